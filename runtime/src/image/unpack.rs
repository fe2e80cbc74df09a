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

/// Detects gzip / zstd / plain tar from the first bytes and returns a tar stream.
pub fn decompress<'a>(mut r: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut magic = [0u8; 4];
    let mut n = 0;
    while n < 4 {
        let k = r.read(&mut magic[n..])?;
        if k == 0 {
            break;
        }
        n += k;
    }
    let head = io::Cursor::new(magic[..n].to_vec());
    let chained = head.chain(r);
    if n >= 2 && magic[..2] == [0x1f, 0x8b] {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(chained)))
    } else if n >= 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
        let dec = ruzstd::decoding::StreamingDecoder::new(chained)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        Ok(Box::new(dec))
    } else {
        Ok(Box::new(chained))
    }
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

#[cfg(test)]
mod tests {
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
