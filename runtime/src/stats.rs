//! Container and sandbox statistics from the cgroups, for the stats RPCs and their stream
//! twins.

use cricket_proto::v1 as cri;

use crate::engine::Engine;
use crate::state::{CtrState, PodState};

impl Engine {
    pub fn pod_stats(&self, id: &str) -> Option<cri::PodSandboxStats> {
        let (attrs, cgroup, ctr_ids) = {
            let t = self.tables();
            let p = t.pods.get(id)?;
            let attrs = cri::PodSandboxAttributes {
                id: p.rec.id.clone(),
                metadata: p.config.metadata.clone(),
                labels: p.config.labels.clone(),
                annotations: p.config.annotations.clone(),
            };
            let ids: Vec<String> = t
                .ctrs
                .values()
                .filter(|c| c.rec.pod_id == id && c.rec.state != CtrState::Exited)
                .map(|c| c.rec.id.clone())
                .collect();
            (attrs, p.rec.cgroup.clone(), ids)
        };
        // The pod cgroup holds the pause process and every container: its usage is the pod's.
        let cg = self.cgroups.create(&cgroup).ok();
        let u = cg.as_ref().map(|g| g.usage()).unwrap_or_default();
        let now = crate::sys::now_ns();
        let containers: Vec<cri::ContainerStats> = ctr_ids
            .iter()
            .filter_map(|c| self.container_stats(c))
            .collect();
        let procs: u64 = containers.len() as u64 + 1;
        Some(cri::PodSandboxStats {
            attributes: Some(attrs),
            linux: Some(cri::LinuxPodSandboxStats {
                cpu: Some(cpu_usage(&u, now)),
                memory: Some(memory_usage(&u, now)),
                network: None,
                process: Some(cri::ProcessUsage {
                    timestamp: now,
                    process_count: Some(cri::UInt64Value { value: procs }),
                }),
                containers,
                io: None,
            }),
            windows: None,
        })
    }

    pub fn pod_ids(&self, f: Option<&cri::PodSandboxStatsFilter>) -> Vec<String> {
        let t = self.tables();
        t.pods
            .values()
            .filter(|p| p.rec.state == PodState::Ready)
            .filter(|p| {
                f.is_none_or(|f| {
                    (f.id.is_empty() || p.rec.id.starts_with(&f.id))
                        && crate::views::labels_match(&p.config.labels, &f.label_selector)
                })
            })
            .map(|p| p.rec.id.clone())
            .collect()
    }

    pub fn ctr_stat_ids(&self, f: Option<&cri::ContainerStatsFilter>) -> Vec<String> {
        let t = self.tables();
        t.ctrs
            .values()
            .filter(|c| c.rec.state != CtrState::Exited)
            .filter(|c| {
                f.is_none_or(|f| {
                    (f.id.is_empty() || c.rec.id.starts_with(&f.id))
                        && (f.pod_sandbox_id.is_empty()
                            || c.rec.pod_id.starts_with(&f.pod_sandbox_id))
                        && crate::views::labels_match(&c.config.labels, &f.label_selector)
                })
            })
            .map(|c| c.rec.id.clone())
            .collect()
    }

    pub fn container_stats(&self, id: &str) -> Option<cri::ContainerStats> {
        let t = self.tables();
        let c = t.ctrs.get(id)?;
        let u = self
            .cgroups
            .create(&c.rec.cgroup)
            .map(|g| g.usage())
            .unwrap_or_default();
        let now = crate::sys::now_ns();
        let upper = c.dir.join("upper");
        let (bytes, inodes) = dir_usage(&upper);
        Some(cri::ContainerStats {
            attributes: Some(cri::ContainerAttributes {
                id: c.rec.id.clone(),
                metadata: c.config.metadata.clone(),
                labels: c.config.labels.clone(),
                annotations: c.config.annotations.clone(),
            }),
            cpu: Some(cpu_usage(&u, now)),
            memory: Some(memory_usage(&u, now)),
            writable_layer: Some(cri::FilesystemUsage {
                timestamp: now,
                fs_id: Some(cri::FilesystemIdentifier {
                    mountpoint: upper.display().to_string(),
                }),
                used_bytes: Some(cri::UInt64Value { value: bytes }),
                inodes_used: Some(cri::UInt64Value { value: inodes }),
            }),
            swap: None,
            io: None,
        })
    }
}

fn dir_usage(p: &std::path::Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut acc = (0, 0);
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            acc.0 += m.blocks() * 512;
            acc.1 += 1;
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    acc
}

fn cpu_usage(u: &crate::cgroups::Usage, now: i64) -> cri::CpuUsage {
    cri::CpuUsage {
        timestamp: now,
        usage_core_nano_seconds: Some(cri::UInt64Value { value: u.cpu_ns }),
        usage_nano_cores: None,
        psi: None,
    }
}

fn memory_usage(u: &crate::cgroups::Usage, now: i64) -> cri::MemoryUsage {
    let v = |value| Some(cri::UInt64Value { value });
    cri::MemoryUsage {
        timestamp: now,
        working_set_bytes: v(u.memory_working_set),
        available_bytes: None,
        usage_bytes: v(u.memory_usage),
        rss_bytes: v(u.memory_rss),
        page_faults: v(u.page_faults),
        major_page_faults: v(u.major_page_faults),
        psi: None,
    }
}
