//! Unpacking image layers into a rootfs without ever writing outside it.
//!
//! Every path is resolved with `openat2(RESOLVE_IN_ROOT)` from a descriptor of the rootfs, so
//! symlinks (absolute or `../`-laden, created by this or an earlier layer) resolve as they
//! would inside the container, never into the host. On top of that:
//! - an entry name with a `..` component is refused (the pull fails);
//! - an absolute entry name is neutralised: it lands relative to the rootfs;
//! - an existing file is unlinked before a new one is created (`O_EXCL|O_NOFOLLOW`), so
//!   nothing is ever written through a link;
//! - hardlink targets are resolved inside the rootfs and must be regular files;
//! - character and block devices are neutralised (not created): containers get their devices
//!   from the runtime;
//! - whiteouts (`.wh.NAME`) and opaque directories (`.wh..wh..opq`) are applied.

use std::collections::HashSet;
use std::ffi::CString;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What unpacking a layer did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unpacked {
    pub entries: u64,
    pub bytes: u64,
    /// Entries changed or skipped for safety, with why (absolute paths, device nodes).
    pub neutralised: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer entry {0:?} has a '..' component and would escape the rootfs")]
    Escape(String),
    #[error("layer entry {path:?}: {reason}")]
    Entry { path: String, reason: String },
    #[error("reading the layer: {0}")]
    Read(io::Error),
}

fn entry_err(path: &str, reason: impl ToString) -> UnpackError {
    UnpackError::Entry {
        path: path.to_string(),
        reason: reason.to_string(),
    }
}

/// Largest zstd window a layer may ask for: zstd's own default decoder limit (2^27). The
/// decoder allocates the window up front, so a 49-byte frame could otherwise demand gigabytes
/// (found by the `layer_unpack` cargo-fuzz target).
const MAX_ZSTD_WINDOW: u64 = 1 << 27;

/// The window size a zstd frame header (the bytes after the magic number) declares.
fn zstd_window(h: &[u8]) -> Option<u64> {
    let fhd = *h.first()?;
    let single_segment = fhd & 0x20 != 0;
    if !single_segment {
        let wd = *h.get(1)?;
        let base = 1u64 << (10 + u32::from(wd >> 3));
        return Some(base + (base / 8) * u64::from(wd & 7));
    }
    // Single segment: the window is the frame content size.
    let did = [0usize, 1, 2, 4][usize::from(fhd & 3)];
    let fcs = [1usize, 2, 4, 8][usize::from(fhd >> 6)];
    let bytes = h.get(1 + did..1 + did + fcs)?;
    let mut v = 0u64;
    for (i, b) in bytes.iter().enumerate() {
        v |= u64::from(*b) << (8 * i);
    }
    Some(if fcs == 2 { v + 256 } else { v })
}

/// Detects gzip / zstd / plain tar from the first bytes and returns a tar stream.
pub fn decompress<'a>(mut r: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let magic = read_up_to(&mut r, 4)?;
    if magic.starts_with(&[0x1f, 0x8b]) {
        return Ok(Box::new(flate2::read::MultiGzDecoder::new(
            io::Cursor::new(magic).chain(r),
        )));
    }
    if magic == [0x28, 0xb5, 0x2f, 0xfd] {
        // The frame header decides how much memory the decoder takes: read it first.
        let header = read_up_to(&mut r, 14)?;
        if let Some(w) = zstd_window(&header)
            && w > MAX_ZSTD_WINDOW
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "zstd frame asks for a {w}-byte window; layers may use at most {MAX_ZSTD_WINDOW}"
                ),
            ));
        }
        let all = io::Cursor::new([magic, header].concat()).chain(r);
        let dec = ruzstd::decoding::StreamingDecoder::new(all)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        return Ok(Box::new(dec));
    }
    Ok(Box::new(io::Cursor::new(magic).chain(r)))
}

/// Up to `n` bytes (fewer only at the end of the stream).
fn read_up_to(r: &mut impl Read, n: usize) -> io::Result<Vec<u8>> {
    let mut b = vec![0u8; n];
    let mut got = 0;
    while got < n {
        let k = r.read(&mut b[got..])?;
        if k == 0 {
            break;
        }
        got += k;
    }
    b.truncate(got);
    Ok(b)
}

fn cstr(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `openat2(dirfd, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`.
pub(crate) fn open_in_root(root: RawFd, path: &[u8], flags: libc::c_int) -> io::Result<OwnedFd> {
    let p = cstr(if path.is_empty() { b"." } else { path })?;
    // SAFETY: open_how is plain data; zeroed is its documented "no options" value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: valid dirfd, NUL-terminated path and a properly sized open_how.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root,
            p.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a fresh descriptor we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Opens (creating as needed) the directory `components` inside the rootfs.
pub(crate) fn ensure_dir(root: RawFd, components: &[&[u8]]) -> io::Result<OwnedFd> {
    let joined = components.join(&b'/');
    match open_in_root(root, &joined, libc::O_PATH | libc::O_DIRECTORY) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(e),
    }
    let mut parent = open_in_root(root, b"", libc::O_PATH | libc::O_DIRECTORY)?;
    for i in 0..components.len() {
        let prefix = components[..=i].join(&b'/');
        match open_in_root(root, &prefix, libc::O_PATH | libc::O_DIRECTORY) {
            Ok(fd) => parent = fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let name = cstr(components[i])?;
                // SAFETY: parent is a directory descriptor; name is a single component.
                check(unsafe { libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), 0o755) })?;
                parent = open_in_root(root, &prefix, libc::O_PATH | libc::O_DIRECTORY)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(parent)
}

fn lstat_at(dir: RawFd, name: &CString) -> io::Result<Option<libc::stat>> {
    // SAFETY: stat is plain data filled by the kernel.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid dirfd and name; AT_SYMLINK_NOFOLLOW so links are not followed.
    let r = unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
    if r == 0 {
        Ok(Some(st))
    } else {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOENT) {
            Ok(None)
        } else {
            Err(e)
        }
    }
}

/// Removes `name` in `dir` (recursively for directories), never following links.
pub fn remove_at(dir: RawFd, name: &CString) -> io::Result<()> {
    let Some(st) = lstat_at(dir, name)? else {
        return Ok(());
    };
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        // SAFETY: opening a directory entry relative to dir without following links.
        let fd = check(unsafe {
            libc::openat(
                dir,
                name.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: fresh descriptor we own.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        clear_dir(owned.as_raw_fd(), &HashSet::new())?;
        // SAFETY: valid dirfd and name.
        check(unsafe { libc::unlinkat(dir, name.as_ptr(), libc::AT_REMOVEDIR) })?;
    } else {
        // SAFETY: valid dirfd and name.
        check(unsafe { libc::unlinkat(dir, name.as_ptr(), 0) })?;
    }
    Ok(())
}

/// Removes every entry of the open directory `fd` except the names in `keep`.
fn clear_dir(fd: RawFd, keep: &HashSet<Vec<u8>>) -> io::Result<()> {
    let names: Vec<Vec<u8>> = std::fs::read_dir(format!("/proc/self/fd/{fd}"))?
        .filter_map(Result::ok)
        .map(|e| e.file_name().as_bytes().to_vec())
        .filter(|n| !keep.contains(n))
        .collect();
    for n in names {
        remove_at(fd, &cstr(&n)?)?;
    }
    Ok(())
}

/// Splits an entry name into safe components: `.` and empty parts dropped, a leading `/`
/// reported (neutralised), `..` refused.
fn components(raw: &[u8]) -> Result<(Vec<&[u8]>, bool), UnpackError> {
    let absolute = raw.first() == Some(&b'/');
    let mut out = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                return Err(UnpackError::Escape(
                    String::from_utf8_lossy(raw).into_owned(),
                ));
            }
            c => out.push(c),
        }
    }
    Ok((out, absolute))
}

/// Unpacks one layer (gzip, zstd or plain tar) on top of `root`.
pub fn unpack_layer(layer: impl Read, root: &Path) -> Result<Unpacked, UnpackError> {
    std::fs::create_dir_all(root).map_err(UnpackError::Read)?;
    let root_fd = {
        let c = cstr(root.as_os_str().as_bytes()).map_err(UnpackError::Read)?;
        // SAFETY: opening the rootfs directory itself.
        let fd = check(unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })
        .map_err(UnpackError::Read)?;
        // SAFETY: fresh descriptor we own.
        unsafe { OwnedFd::from_raw_fd(fd) }
    };
    let root_raw = root_fd.as_raw_fd();
    let stream = decompress(layer).map_err(UnpackError::Read)?;
    let mut archive = tar::Archive::new(stream);
    let mut stats = Unpacked::default();
    // Paths this layer created: an opaque marker hides only what lower layers put there.
    let mut created: HashSet<Vec<u8>> = HashSet::new();
    for entry in archive.entries().map_err(UnpackError::Read)? {
        let mut entry = entry.map_err(UnpackError::Read)?;
        let raw_path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let (comps, absolute) = components(&raw_path)?;
        stats.entries += 1;
        if absolute {
            stats
                .neutralised
                .push(format!("{shown}: absolute path placed under the rootfs"));
        }
        let Some((name, parent)) = comps.split_last() else {
            continue;
        };
        let header = entry.header().clone();
        let kind = header.entry_type();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let uid = header.uid().unwrap_or(0) as libc::uid_t;
        let gid = header.gid().unwrap_or(0) as libc::gid_t;

        // Whiteouts.
        if let Some(hidden) = name.strip_prefix(b".wh.") {
            let dir = ensure_dir(root_raw, parent).map_err(|e| entry_err(&shown, e))?;
            let dir = reopen_dir(&dir).map_err(|e| entry_err(&shown, e))?;
            if hidden == b".wh..opq" {
                let prefix = parent.join(&b'/');
                let keep: HashSet<Vec<u8>> = created
                    .iter()
                    .filter_map(|p| {
                        let rest = if prefix.is_empty() {
                            Some(p.as_slice())
                        } else {
                            p.strip_prefix(prefix.as_slice())?.strip_prefix(b"/")
                        }?;
                        Some(rest.split(|&b| b == b'/').next()?.to_vec())
                    })
                    .collect();
                clear_dir(dir.as_raw_fd(), &keep).map_err(|e| entry_err(&shown, e))?;
            } else {
                remove_at(
                    dir.as_raw_fd(),
                    &cstr(hidden).map_err(|e| entry_err(&shown, e))?,
                )
                .map_err(|e| entry_err(&shown, e))?;
            }
            continue;
        }

        let parent_fd = ensure_dir(root_raw, parent).map_err(|e| entry_err(&shown, e))?;
        let pfd = parent_fd.as_raw_fd();
        let cname = cstr(name).map_err(|e| entry_err(&shown, e))?;
        let existing = lstat_at(pfd, &cname).map_err(|e| entry_err(&shown, e))?;
        let is_dir = |st: &libc::stat| st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        let full: Vec<u8> = comps.join(&b'/');

        use tar::EntryType as T;
        match kind {
            T::Directory => {
                if existing.as_ref().is_some_and(|st| !is_dir(st)) {
                    remove_at(pfd, &cname).map_err(|e| entry_err(&shown, e))?;
                }
                if existing.as_ref().is_none_or(|st| !is_dir(st)) {
                    // SAFETY: valid dirfd and single-component name.
                    check(unsafe { libc::mkdirat(pfd, cname.as_ptr(), mode) })
                        .map_err(|e| entry_err(&shown, e))?;
                }
                // SAFETY: metadata on an entry we just made or that is a real directory.
                unsafe {
                    libc::fchownat(pfd, cname.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW);
                    libc::fchmodat(pfd, cname.as_ptr(), mode, 0);
                }
            }
            T::Regular | T::Continuous | T::GNUSparse => {
                if existing.is_some() {
                    remove_at(pfd, &cname).map_err(|e| entry_err(&shown, e))?;
                }
                // SAFETY: O_EXCL|O_NOFOLLOW: a new file, never one reached through a link.
                let fd = check(unsafe {
                    libc::openat(
                        pfd,
                        cname.as_ptr(),
                        libc::O_WRONLY
                            | libc::O_CREAT
                            | libc::O_EXCL
                            | libc::O_NOFOLLOW
                            | libc::O_CLOEXEC,
                        0o600,
                    )
                })
                .map_err(|e| entry_err(&shown, e))?;
                // SAFETY: fresh descriptor we own.
                let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
                let n = io::copy(&mut entry, &mut file).map_err(UnpackError::Read)?;
                stats.bytes += n;
                // Owner first, then mode: chown clears set-id bits.
                // SAFETY: valid descriptor.
                unsafe {
                    libc::fchown(fd, uid, gid);
                    libc::fchmod(fd, mode);
                }
            }
            T::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| entry_err(&shown, "symlink without a target"))?
                    .into_owned();
                if existing.is_some() {
                    remove_at(pfd, &cname).map_err(|e| entry_err(&shown, e))?;
                }
                let t = cstr(&target).map_err(|e| entry_err(&shown, e))?;
                // SAFETY: creating a link is harmless in itself: every later resolution stays
                // inside the rootfs (RESOLVE_IN_ROOT here, the container's root at run time).
                check(unsafe { libc::symlinkat(t.as_ptr(), pfd, cname.as_ptr()) })
                    .map_err(|e| entry_err(&shown, e))?;
                // SAFETY: lchown of the link itself.
                unsafe {
                    libc::fchownat(pfd, cname.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW);
                }
            }
            T::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| entry_err(&shown, "hardlink without a target"))?
                    .into_owned();
                let (tcomps, _) = components(&target)
                    .map_err(|_| entry_err(&shown, "hardlink target has a '..' component"))?;
                let tfd = open_in_root(
                    root_raw,
                    &tcomps.join(&b'/'),
                    libc::O_PATH | libc::O_NOFOLLOW,
                )
                .map_err(|e| {
                    entry_err(
                        &shown,
                        format!(
                            "hardlink target {:?} inside the image: {e}",
                            String::from_utf8_lossy(&target)
                        ),
                    )
                })?;
                // SAFETY: fstat on our descriptor.
                let mut st: libc::stat = unsafe { std::mem::zeroed() };
                check(unsafe { libc::fstat(tfd.as_raw_fd(), &mut st) })
                    .map_err(|e| entry_err(&shown, e))?;
                if st.st_mode & libc::S_IFMT != libc::S_IFREG {
                    return Err(entry_err(&shown, "hardlink target is not a regular file"));
                }
                if existing.is_some() {
                    remove_at(pfd, &cname).map_err(|e| entry_err(&shown, e))?;
                }
                let empty = cstr(b"").map_err(|e| entry_err(&shown, e))?;
                // SAFETY: links the file we resolved inside the rootfs (AT_EMPTY_PATH on its fd).
                check(unsafe {
                    libc::linkat(
                        tfd.as_raw_fd(),
                        empty.as_ptr(),
                        pfd,
                        cname.as_ptr(),
                        libc::AT_EMPTY_PATH,
                    )
                })
                .map_err(|e| entry_err(&shown, e))?;
            }
            T::Fifo => {
                if existing.is_some() {
                    remove_at(pfd, &cname).map_err(|e| entry_err(&shown, e))?;
                }
                // SAFETY: a FIFO is an inert file system object.
                check(unsafe { libc::mknodat(pfd, cname.as_ptr(), libc::S_IFIFO | mode, 0) })
                    .map_err(|e| entry_err(&shown, e))?;
            }
            T::Char | T::Block => {
                stats
                    .neutralised
                    .push(format!("{shown}: device node not created"));
                continue;
            }
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => continue,
            other => {
                stats
                    .neutralised
                    .push(format!("{shown}: unsupported entry type {other:?} skipped"));
                continue;
            }
        }
        created.insert(full);
    }
    Ok(stats)
}

/// Turns an O_PATH directory descriptor into one that can be listed.
fn reopen_dir(fd: &OwnedFd) -> io::Result<OwnedFd> {
    let dot = cstr(b".")?;
    // SAFETY: reopening "." relative to a directory descriptor.
    let r = check(unsafe {
        libc::openat(
            fd.as_raw_fd(),
            dot.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// The oracle behind the `layer_unpack` cargo-fuzz target: any bytes, as a (possibly
/// compressed) layer, unpacked into a fresh rootfs inside a fresh parent directory. Whatever
/// the layer says, nothing may appear beside the rootfs and no symlink inside it may have been
/// followed out of it; no input may panic.
pub fn check_unpack(data: &[u8]) {
    let Ok(parent) = tempfile::tempdir() else {
        return;
    };
    let root = parent.path().join("rootfs");
    if std::fs::create_dir(&root).is_err() {
        return;
    }
    if let Ok(r) = decompress(data) {
        let _ = unpack_layer(r, &root);
    }
    let beside: Vec<_> = std::fs::read_dir(parent.path())
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert_eq!(
        beside,
        vec![std::ffi::OsString::from("rootfs")],
        "a layer wrote outside the rootfs"
    );
}

#[cfg(test)]
mod tests {

    /// A tiny zstd frame asking for a huge window is refused before any allocation.
    #[test]
    fn zstd_window_is_bounded() {
        let bomb = [
            0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xf8, 0x80, 0x00, 0x00, 0x28, 0xb5, 0x2f, 0xfd, 0x00,
        ];
        let err = super::decompress(&bomb[..]).err().expect("refused");
        assert!(err.to_string().contains("window"), "{err}");
        // Window descriptor 0x00: 1 KiB; single segment with a 1-byte content size of 5.
        assert_eq!(super::zstd_window(&[0x00, 0x00]), Some(1024));
        assert_eq!(super::zstd_window(&[0x20, 0x05]), Some(5));
        assert_eq!(
            super::zstd_window(&[0x00, 0xff]),
            Some((1 << 41) + 7 * (1 << 38))
        );
    }

    /// The `layer_unpack` oracle over hostile layers and thousands of damaged copies.
    #[test]
    fn unpack_oracle_holds() {
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |path: &str, kind: tar::EntryType, link: Option<&str>, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            let _ = h.set_path("placeholder");
            // Raw names so the builder's own checks do not clean them.
            let name = path.as_bytes();
            h.as_old_mut().name[..name.len().min(100)]
                .copy_from_slice(&name[..name.len().min(100)]);
            if let Some(l) = link {
                let _ = h.set_link_name(l);
            }
            h.set_cksum();
            b.append(&h, data).expect("append");
        };
        add("a", tar::EntryType::Regular, None, b"x");
        add("../escape", tar::EntryType::Regular, None, b"x");
        add("/abs", tar::EntryType::Regular, None, b"x");
        add("l", tar::EntryType::Symlink, Some("/"), b"");
        add("l/through", tar::EntryType::Regular, None, b"x");
        add("up", tar::EntryType::Symlink, Some("../.."), b"");
        add("up/out", tar::EntryType::Regular, None, b"x");
        add("h", tar::EntryType::Link, Some("../../etc/passwd"), b"");
        let layer = b.into_inner().expect("tar");
        super::check_unpack(&layer);
        let mut x: u64 = 3;
        for _ in 0..2_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let mut d = layer.clone();
            for k in 0..4 {
                let at = ((x >> (8 + k * 8)) as usize) % d.len();
                d[at] ^= (x >> (k * 5)) as u8;
            }
            super::check_unpack(&d);
        }
    }

    use super::*;

    fn tar_of(name: &str, data: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).expect("append");
        b.into_inner().expect("tar")
    }

    /// Layers come gzip-, zstd- or un-compressed; all three unpack the same way.
    #[test]
    fn gzip_zstd_and_plain_layers() {
        use std::io::Write;
        let tar = tar_of("etc/flag", b"same\n");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).expect("gzip");
        let gz = gz.finish().expect("gzip");
        let zst = ruzstd::encoding::compress_to_vec(
            tar.as_slice(),
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        for (what, bytes) in [("plain", tar.clone()), ("gzip", gz), ("zstd", zst)] {
            let dir = tempfile::tempdir().expect("tempdir");
            let stats = unpack_layer(bytes.as_slice(), dir.path())
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(stats.entries, 1, "{what}");
            assert_eq!(
                std::fs::read(dir.path().join("etc/flag")).expect(what),
                b"same\n",
                "{what}"
            );
        }
    }

    #[test]
    fn components_refuse_dotdot_and_flag_absolute() {
        assert_eq!(
            components(b"./a//b/").map(|(c, a)| (c.len(), a)).ok(),
            Some((2, false))
        );
        assert_eq!(
            components(b"/etc/x").map(|(c, a)| (c.len(), a)).ok(),
            Some((2, true))
        );
        assert!(components(b"a/../../x").is_err());
    }
}
