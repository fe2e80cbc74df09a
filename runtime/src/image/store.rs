//! The image store under `<root>/images`: content-addressed blobs, one unpacked rootfs per
//! layer chain, and an index of images (id = config digest, like containerd) with their tags
//! and digests, persisted as JSON so a restarted runtime still knows its images.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use super::protocol::PullError;
use super::reference::{Reference, valid_digest};

/// What the runtime needs from an image config to run containers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunConfig {
    pub user: String,
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub working_dir: String,
    pub stop_signal: String,
    pub volumes: Vec<String>,
    pub exposed_ports: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    pub digest: String,
    pub diff_id: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The config digest: `Image.id` and `PullImageResponse.image_ref`.
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub manifest_digest: String,
    pub config: RunConfig,
    pub layers: Vec<LayerRecord>,
    /// Compressed layers plus config, in bytes (`Image.size`, > 0).
    pub size: u64,
    /// Directory name of the unpacked rootfs under `images/rootfs`.
    pub rootfs: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    images: BTreeMap<String, ImageRecord>,
}

pub struct ImageStore {
    dir: PathBuf,
    index: RwLock<Index>,
    /// Pulls in progress: their blobs and rootfs are not in the index yet, so garbage
    /// collection waits until none is running.
    active_pulls: std::sync::Mutex<(usize, bool)>,
    /// Rootfs directories containers are built on, with how many use each. Removing an image
    /// must not pull the lower layer out from under a container created from it (as
    /// containerd keeps a snapshot's parents while the container's snapshot exists).
    held: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

/// Held for the length of a pull; see [`ImageStore::begin_pull`].
pub struct PullGuard<'a> {
    store: &'a ImageStore,
}

impl Drop for PullGuard<'_> {
    fn drop(&mut self) {
        let run_gc = {
            let mut a = self
                .store
                .active_pulls
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            a.0 -= 1;
            let pending = a.0 == 0 && a.1;
            if pending {
                a.1 = false;
            }
            pending
        };
        if run_gc {
            self.store.collect_garbage();
        }
    }
}

fn hex(d: &str) -> &str {
    d.strip_prefix("sha256:").unwrap_or(d)
}

impl ImageStore {
    /// Opens (or creates) the store in `<root>/images`; leftovers of interrupted pulls are
    /// removed.
    pub fn open(root: &Path) -> std::io::Result<Self> {
        let dir = root.join("images");
        for sub in ["blobs/sha256", "rootfs", "tmp"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let _ = std::fs::remove_dir_all(dir.join("tmp"));
        std::fs::create_dir_all(dir.join("tmp"))?;
        let index = match std::fs::read(dir.join("index.json")) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("images/index.json: {e}"),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Index::default(),
            Err(e) => return Err(e),
        };
        Ok(Self {
            dir,
            index: RwLock::new(index),
            active_pulls: std::sync::Mutex::new((0, false)),
            held: std::sync::Mutex::new(std::collections::HashMap::new()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the blob of `digest` lives; `None` unless the digest is `sha256:<64 hex>`, so a
    /// digest from a manifest can never name a path outside the store.
    pub fn blob_path(&self, digest: &str) -> Option<PathBuf> {
        valid_digest(digest).then(|| self.dir.join("blobs/sha256").join(hex(digest)))
    }

    /// `blob_path` for a pull: a digest that names no safe path is refused.
    pub fn blob(&self, digest: &str) -> Result<PathBuf, PullError> {
        self.blob_path(digest)
            .ok_or_else(|| PullError::Refused(format!("digest {digest:?} is not sha256:<64 hex>")))
    }

    pub fn rootfs_path(&self, name: &str) -> PathBuf {
        self.dir.join("rootfs").join(name)
    }

    /// A fresh scratch path for an in-progress download or unpack (same file system as the
    /// store, so finishing is a rename).
    pub fn temp_path(&self, what: &str) -> PathBuf {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        self.dir.join("tmp").join(format!(
            "{what}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }

    fn persist(&self, index: &Index) -> std::io::Result<()> {
        let tmp = self.dir.join("index.json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(index).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(tmp, self.dir.join("index.json"))
    }

    pub fn list(&self) -> Vec<ImageRecord> {
        self.read().images.values().cloned().collect()
    }

    /// Finds an image by id (`sha256:…` or bare hex), unique id prefix (at least 3 hex
    /// characters), tag or digest reference (normalised: `busybox` finds
    /// `docker.io/library/busybox:latest`).
    /// Finds an image and holds its rootfs for a new container in one step, so a concurrent
    /// RemoveImage cannot collect the rootfs in between. The container releases it with
    /// [`ImageStore::release`] when it is removed.
    pub fn find_and_hold(&self, reference: &str) -> Option<ImageRecord> {
        // The index read lock spans the lookup and the hold; garbage collection reads the
        // index and the holds under the same lock.
        let idx = self.read();
        let img = Self::lookup(&idx, reference)?;
        self.hold(&img.rootfs);
        drop(idx);
        Some(img)
    }

    /// Counts one more container on `rootfs` (also used when restoring containers).
    pub fn hold(&self, rootfs: &str) {
        *self
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(rootfs.to_string())
            .or_insert(0) += 1;
    }

    /// One container less on `rootfs`; the last one lets garbage collection remove it when no
    /// image uses it any more.
    pub fn release(&self, rootfs: &str) {
        let last = {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            match held.get_mut(rootfs) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                Some(_) => {
                    held.remove(rootfs);
                    true
                }
                None => false,
            }
        };
        if last {
            self.collect_garbage();
        }
    }

    pub fn find(&self, reference: &str) -> Option<ImageRecord> {
        Self::lookup(&self.read(), reference)
    }

    fn lookup(idx: &Index, reference: &str) -> Option<ImageRecord> {
        let r = reference.trim();
        if let Some(img) = idx.images.get(r) {
            return Some(img.clone());
        }
        let bare = r.strip_prefix("sha256:").unwrap_or(r);
        if bare.len() >= 3 && bare.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut hits = idx.images.values().filter(|i| hex(&i.id).starts_with(bare));
            if let (Some(one), None) = (hits.next(), hits.next()) {
                return Some(one.clone());
            }
        }
        let parsed = Reference::parse(r).ok()?;
        if let Some(d) = &parsed.digest {
            let want = parsed.with_digest(d);
            return idx
                .images
                .values()
                .find(|i| i.repo_digests.contains(&want))
                .cloned();
        }
        let want = parsed.tagged()?;
        idx.images
            .values()
            .find(|i| i.repo_tags.contains(&want))
            .cloned()
    }

    /// Records a pulled image. Its tags move to it from any other image; an image left with
    /// no tag and no digest is dropped.
    pub fn put(&self, mut rec: ImageRecord) -> std::io::Result<ImageRecord> {
        let mut idx = self.write();
        if let Some(old) = idx.images.get(&rec.id) {
            for t in &old.repo_tags {
                if !rec.repo_tags.contains(t) {
                    rec.repo_tags.push(t.clone());
                }
            }
            for d in &old.repo_digests {
                if !rec.repo_digests.contains(d) {
                    rec.repo_digests.push(d.clone());
                }
            }
        }
        rec.repo_tags.sort();
        rec.repo_digests.sort();
        let mut orphans = Vec::new();
        for (id, other) in idx.images.iter_mut() {
            if *id == rec.id {
                continue;
            }
            other.repo_tags.retain(|t| !rec.repo_tags.contains(t));
            if other.repo_tags.is_empty() && other.repo_digests.is_empty() {
                orphans.push(id.clone());
            }
        }
        for id in orphans {
            idx.images.remove(&id);
        }
        idx.images.insert(rec.id.clone(), rec.clone());
        self.persist(&idx)?;
        drop(idx);
        self.collect_garbage();
        Ok(rec)
    }

    /// Removes the image `reference` names, with all its tags. `Ok(None)` when no image
    /// matches (RemoveImage is idempotent).
    pub fn remove(&self, reference: &str) -> std::io::Result<Option<ImageRecord>> {
        let Some(img) = self.find(reference) else {
            return Ok(None);
        };
        let mut idx = self.write();
        let removed = idx.images.remove(&img.id);
        self.persist(&idx)?;
        drop(idx);
        self.collect_garbage();
        Ok(removed)
    }

    /// Marks a pull in progress until the guard is dropped.
    pub fn begin_pull(&self) -> PullGuard<'_> {
        self.active_pulls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0 += 1;
        PullGuard { store: self }
    }

    /// Removes one tag only (the misbehaviour behind fault `remove-keeps-other-tags`).
    pub fn untag(&self, reference: &str) -> std::io::Result<Option<ImageRecord>> {
        let Some(img) = self.find(reference) else {
            return Ok(None);
        };
        let Some(tag) = Reference::parse(reference).ok().and_then(|r| r.tagged()) else {
            return self.remove(reference);
        };
        if img.repo_tags.len() <= 1 {
            return self.remove(reference);
        }
        let mut idx = self.write();
        if let Some(i) = idx.images.get_mut(&img.id) {
            i.repo_tags.retain(|t| *t != tag);
        }
        self.persist(&idx)?;
        Ok(Some(img))
    }

    /// Deletes blobs and rootfs directories no image refers to any more (deferred while a
    /// pull is running: what it fetched is not referenced yet).
    fn collect_garbage(&self) {
        {
            let mut a = self.active_pulls.lock().unwrap_or_else(|p| p.into_inner());
            if a.0 > 0 {
                a.1 = true;
                return;
            }
        }
        let idx = self.read();
        let mut blobs = std::collections::HashSet::new();
        let mut roots = std::collections::HashSet::new();
        for i in idx.images.values() {
            blobs.insert(hex(&i.id).to_string());
            blobs.insert(hex(&i.manifest_digest).to_string());
            for l in &i.layers {
                blobs.insert(hex(&l.digest).to_string());
            }
            roots.insert(i.rootfs.clone());
        }
        roots.extend(
            self.held
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .keys()
                .cloned(),
        );
        drop(idx);
        if let Ok(rd) = std::fs::read_dir(self.dir.join("blobs/sha256")) {
            for e in rd.flatten() {
                if !blobs.contains(e.file_name().to_string_lossy().as_ref()) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        if let Ok(rd) = std::fs::read_dir(self.dir.join("rootfs")) {
            for e in rd.flatten() {
                if !roots.contains(e.file_name().to_string_lossy().as_ref()) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }

    /// Bytes and inodes the store uses on disk (ImageFsInfo).
    pub fn usage(&self) -> (u64, u64) {
        fn walk(p: &Path, acc: &mut (u64, u64)) {
            let Ok(rd) = std::fs::read_dir(p) else { return };
            for e in rd.flatten() {
                let Ok(m) = e.metadata() else { continue };
                acc.0 += m.blocks() * 512;
                acc.1 += 1;
                if m.is_dir() {
                    walk(&e.path(), acc);
                }
            }
        }
        let mut acc = (0, 0);
        walk(&self.dir, &mut acc);
        acc
    }
}

/// The user an image config names, as ImageStatus reports it: a numeric user gives `uid`,
/// a name gives `username` (api.proto: they are mutually exclusive); the group is ignored.
pub fn image_user(user: &str) -> (Option<i64>, String) {
    let u = user.split(':').next().unwrap_or_default().trim();
    if u.is_empty() {
        (None, String::new())
    } else if let Ok(n) = u.parse::<i64>() {
        (Some(n), String::new())
    } else {
        (None, u.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, tags: &[&str]) -> ImageRecord {
        ImageRecord {
            id: id.into(),
            repo_tags: tags.iter().map(|t| t.to_string()).collect(),
            repo_digests: vec![],
            manifest_digest: format!("sha256:{}", "f".repeat(64)),
            config: RunConfig::default(),
            layers: vec![],
            size: 1,
            rootfs: "r".into(),
        }
    }

    #[test]
    fn find_by_id_prefix_tag_and_move_tags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = ImageStore::open(dir.path()).expect("open");
        let a = format!("sha256:a1{}", "0".repeat(62));
        let b = format!("sha256:b2{}", "0".repeat(62));
        s.put(rec(&a, &["docker.io/library/busybox:latest", "x.io/a:1"]))
            .expect("put");
        assert_eq!(s.find("busybox").map(|i| i.id), Some(a.clone()));
        assert_eq!(s.find(&a).map(|i| i.id), Some(a.clone()));
        assert_eq!(s.find("a10").map(|i| i.id), Some(a.clone()));
        assert_eq!(
            s.find(a.trim_start_matches("sha256:")).map(|i| i.id),
            Some(a.clone())
        );
        assert!(s.find("x.io/a:2").is_none());
        // Re-tagging moves the tag; an image with no names left is dropped.
        s.put(rec(&b, &["x.io/a:1", "docker.io/library/busybox:latest"]))
            .expect("put");
        assert!(s.find(&a).is_none());
        assert_eq!(s.find("x.io/a:1").map(|i| i.id), Some(b.clone()));
        // Persisted.
        let again = ImageStore::open(dir.path()).expect("reopen");
        assert_eq!(again.find("busybox").map(|i| i.id), Some(b.clone()));
        assert!(again.remove("x.io/a:1").expect("remove").is_some());
        assert!(
            again.find("busybox").is_none(),
            "removing one tag removes the image with all tags"
        );
        assert!(again.remove("x.io/a:1").expect("idempotent").is_none());
    }

    /// An image removed while a container holds its rootfs keeps the rootfs until the last
    /// container lets go (the property suite found StartContainer failing without this).
    #[test]
    fn a_held_rootfs_outlives_its_image() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = ImageStore::open(dir.path()).expect("open");
        let a = format!("sha256:a1{}", "0".repeat(62));
        s.put(rec(&a, &["x.io/a:1"])).expect("put");
        let root = s.rootfs_path("r");
        std::fs::create_dir_all(root.join("bin")).expect("rootfs");
        let img = s.find_and_hold("x.io/a:1").expect("found");
        s.hold(&img.rootfs);
        assert!(s.remove("x.io/a:1").expect("remove").is_some());
        assert!(
            root.join("bin").is_dir(),
            "held rootfs removed with its image"
        );
        s.release("r");
        assert!(root.is_dir(), "another container still holds it");
        s.release("r");
        assert!(!root.exists(), "the last release frees it");
        s.release("r");
    }

    #[test]
    fn users() {
        assert_eq!(image_user("1002"), (Some(1002), String::new()));
        assert_eq!(image_user("www-data"), (None, "www-data".into()));
        assert_eq!(image_user("1003:users"), (Some(1003), String::new()));
        assert_eq!(image_user("www-data:www-data"), (None, "www-data".into()));
        assert_eq!(image_user(""), (None, String::new()));
    }
}
