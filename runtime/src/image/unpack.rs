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
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{
    AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Stat, Uid, chmodat, chownat, fchmod,
    fchown, fstat, linkat, mkdirat, mknodat, openat, openat2, statat, symlinkat, unlinkat,
};
use rustix::io::Errno;

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

fn is_dir(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Directory
}

/// `openat2(dirfd, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`.
pub(crate) fn open_in_root(
    root: BorrowedFd<'_>,
    path: &[u8],
    flags: OFlags,
) -> io::Result<OwnedFd> {
    let path: &[u8] = if path.is_empty() { b"." } else { path };
    Ok(openat2(
        root,
        path,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )?)
}

/// Opens (creating as needed) the directory `components` inside the rootfs.
pub(crate) fn ensure_dir(root: BorrowedFd<'_>, components: &[&[u8]]) -> io::Result<OwnedFd> {
    let dir = OFlags::PATH | OFlags::DIRECTORY;
    let joined = components.join(&b'/');
    match open_in_root(root, &joined, dir) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(e),
    }
    let mut parent = open_in_root(root, b"", dir)?;
    for i in 0..components.len() {
        let prefix = components[..=i].join(&b'/');
        match open_in_root(root, &prefix, dir) {
            Ok(fd) => parent = fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                mkdirat(&parent, components[i], Mode::from_raw_mode(0o755))?;
                parent = open_in_root(root, &prefix, dir)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(parent)
}

fn lstat_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Option<Stat>> {
    match statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes `name` in `dir` (recursively for directories), never following links.
pub fn remove_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    let Some(st) = lstat_at(dir, name)? else {
        return Ok(());
    };
    if is_dir(&st) {
        let sub = openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        clear_dir(sub.as_fd(), &HashSet::new())?;
        unlinkat(dir, name, AtFlags::REMOVEDIR)?;
    } else {
        unlinkat(dir, name, AtFlags::empty())?;
    }
    Ok(())
}

/// Removes every entry of the open directory `fd` except the names in `keep`.
fn clear_dir(fd: BorrowedFd<'_>, keep: &HashSet<Vec<u8>>) -> io::Result<()> {
    let names: Vec<Vec<u8>> = std::fs::read_dir(format!("/proc/self/fd/{}", fd.as_raw_fd()))?
        .filter_map(Result::ok)
        .map(|e| e.file_name().as_bytes().to_vec())
        .filter(|n| !keep.contains(n))
        .collect();
    for n in names {
        remove_at(fd, &n)?;
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
    let root_fd = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| UnpackError::Read(e.into()))?;
    let root_dir = root_fd.as_fd();
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
        let name: &[u8] = name;
        let header = entry.header().clone();
        let kind = header.entry_type();
        let mode = Mode::from_raw_mode(header.mode().unwrap_or(0o644) & 0o7777);
        // Ids from the image as they are; one beyond u32 cannot exist, and its entry keeps
        // root's.
        let uid = u32::try_from(header.uid().unwrap_or(0))
            .ok()
            .map(Uid::from_raw);
        let gid = u32::try_from(header.gid().unwrap_or(0))
            .ok()
            .map(Gid::from_raw);
        let err = |e: io::Error| entry_err(&shown, e);
        let errno = |e: Errno| entry_err(&shown, io::Error::from(e));

        // Whiteouts.
        if let Some(hidden) = name.strip_prefix(b".wh.") {
            let dir = ensure_dir(root_dir, parent).map_err(err)?;
            let dir = reopen_dir(&dir).map_err(err)?;
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
                clear_dir(dir.as_fd(), &keep).map_err(err)?;
            } else {
                remove_at(dir.as_fd(), hidden).map_err(err)?;
            }
            continue;
        }

        let parent_fd = ensure_dir(root_dir, parent).map_err(err)?;
        let pfd = parent_fd.as_fd();
        let existing = lstat_at(pfd, name).map_err(err)?;
        let full: Vec<u8> = comps.join(&b'/');

        use tar::EntryType as T;
        match kind {
            T::Directory => {
                if existing.as_ref().is_some_and(|st| !is_dir(st)) {
                    remove_at(pfd, name).map_err(err)?;
                }
                if existing.as_ref().is_none_or(|st| !is_dir(st)) {
                    mkdirat(pfd, name, mode).map_err(errno)?;
                }
                // Metadata on an entry we just made or that is a real directory; a failure
                // (ids the kernel refuses) leaves root's.
                let _ = chownat(pfd, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW);
                let _ = chmodat(pfd, name, mode, AtFlags::empty());
            }
            T::Regular | T::Continuous | T::GNUSparse => {
                if existing.is_some() {
                    remove_at(pfd, name).map_err(err)?;
                }
                // O_EXCL|O_NOFOLLOW: a new file, never one reached through a link.
                let fd = openat(
                    pfd,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(errno)?;
                let mut file = std::fs::File::from(fd);
                let n = io::copy(&mut entry, &mut file).map_err(UnpackError::Read)?;
                stats.bytes += n;
                // Owner first, then mode: chown clears set-id bits.
                let _ = fchown(&file, uid, gid);
                let _ = fchmod(&file, mode);
            }
            T::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| entry_err(&shown, "symlink without a target"))?
                    .into_owned();
                if existing.is_some() {
                    remove_at(pfd, name).map_err(err)?;
                }
                // A link is harmless in itself: every later resolution stays inside the
                // rootfs (RESOLVE_IN_ROOT here, the container's root at run time).
                symlinkat(target.as_slice(), pfd, name).map_err(errno)?;
                let _ = chownat(pfd, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW);
            }
            T::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| entry_err(&shown, "hardlink without a target"))?
                    .into_owned();
                let (tcomps, _) = components(&target)
                    .map_err(|_| entry_err(&shown, "hardlink target has a '..' component"))?;
                let tfd = open_in_root(
                    root_dir,
                    &tcomps.join(&b'/'),
                    OFlags::PATH | OFlags::NOFOLLOW,
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
                let st = fstat(&tfd).map_err(errno)?;
                if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                    return Err(entry_err(&shown, "hardlink target is not a regular file"));
                }
                if existing.is_some() {
                    remove_at(pfd, name).map_err(err)?;
                }
                // Links the file resolved inside the rootfs (AT_EMPTY_PATH on its descriptor).
                linkat(&tfd, "", pfd, name, AtFlags::EMPTY_PATH).map_err(errno)?;
            }
            T::Fifo => {
                if existing.is_some() {
                    remove_at(pfd, name).map_err(err)?;
                }
                // A FIFO is an inert file system object.
                mknodat(pfd, name, FileType::Fifo, mode, 0).map_err(errno)?;
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
    Ok(openat(
        fd,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
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
