//! Reading one file of an image's rootfs from the runtime's side (the account databases at
//! CreateContainer). The rootfs is the image's, so its files are hostile: a symlink may name a
//! host file (`/etc/shadow`), a device that never ends (`/dev/zero`) or a FIFO that never
//! answers. Paths resolve inside the rootfs, as the container itself would see them
//! (openat2 RESOLVE_IN_ROOT); only regular files are read, opened without blocking, up to a cap.

use std::io::Read;
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RootfsFileError {
    #[error("/{path} in the image is not a regular file but a {kind}")]
    NotRegular { path: String, kind: &'static str },
    #[error("/{path} in the image is larger than {cap} bytes")]
    TooLarge { path: String, cap: u64 },
    #[error("reading /{path} in the image: {error}")]
    Io { path: String, error: String },
}

/// The contents of `path` (relative to the rootfs, as `etc/passwd`), or `None` when the image
/// has no such file.
pub fn read(rootfs: &Path, path: &str, cap: u64) -> Result<Option<Vec<u8>>, RootfsFileError> {
    let io = |e: std::io::Error| RootfsFileError::Io {
        path: path.to_string(),
        error: e.to_string(),
    };
    let root = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io(e.into()))?;
    let opened = rustix::fs::openat2(
        &root,
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    );
    let fd = match opened {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::NOTDIR) => return Ok(None),
        Err(e) => return Err(io(e.into())),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| io(e.into()))?;
    let kind = match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => None,
        FileType::Directory => Some("directory"),
        FileType::Fifo => Some("FIFO"),
        FileType::CharacterDevice => Some("character device"),
        FileType::BlockDevice => Some("block device"),
        FileType::Socket => Some("socket"),
        _ => Some("special file"),
    };
    if let Some(kind) = kind {
        return Err(RootfsFileError::NotRegular {
            path: path.to_string(),
            kind,
        });
    }
    let mut buf = Vec::new();
    std::fs::File::from(fd)
        .take(cap.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(io)?;
    if buf.len() as u64 > cap {
        return Err(RootfsFileError::TooLarge {
            path: path.to_string(),
            cap,
        });
    }
    Ok(Some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_resolve_inside_the_rootfs_and_only_regular_files_are_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("rootfs");
        std::fs::create_dir_all(root.join("etc")).expect("etc");
        // Outside the rootfs, where an absolute or climbing symlink would lead on the host.
        std::fs::write(dir.path().join("secret"), "host:x:4242:4242::/:/bin/sh\n").expect("secret");
        std::fs::write(root.join("secret"), "image:x:7:7::/:/bin/sh\n").expect("in-image");
        let secret = dir.path().join("secret");
        std::os::unix::fs::symlink(&secret, root.join("etc/abs")).expect("abs link");
        std::os::unix::fs::symlink("../../secret", root.join("etc/rel")).expect("rel link");
        std::os::unix::fs::symlink("/dev/zero", root.join("etc/zero")).expect("zero link");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("etc/fifo"),
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .expect("fifo");
        std::fs::write(root.join("etc/big"), vec![b'x'; 2048]).expect("big");

        // An absolute target names a path inside the rootfs, which may not exist there.
        assert_eq!(read(&root, "etc/abs", 1024), Ok(None));
        // `..` stops at the rootfs: ../../secret is the image's own /secret.
        assert_eq!(
            read(&root, "etc/rel", 1024),
            Ok(Some(b"image:x:7:7::/:/bin/sh\n".to_vec()))
        );
        assert_eq!(read(&root, "etc/zero", 1024), Ok(None));
        assert!(matches!(
            read(&root, "etc/fifo", 1024),
            Err(RootfsFileError::NotRegular { kind: "FIFO", .. })
        ));
        assert!(matches!(
            read(&root, "etc/big", 1024),
            Err(RootfsFileError::TooLarge { cap: 1024, .. })
        ));
        assert!(matches!(
            read(&root, "etc", 1024),
            Err(RootfsFileError::NotRegular {
                kind: "directory",
                ..
            })
        ));
        assert_eq!(read(&root, "etc/none", 1024), Ok(None));
    }
}
