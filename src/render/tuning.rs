//! PostgreSQL tuning with pgtune's formulas
//! (https://github.com/le0pard/pgtune/blob/7caef27/src/features/configuration/configurationSlice.js),
//! for Linux and PostgreSQL 17. The RAM
//! input is the container's memory limit. The database size is not known, so the size factors
//! of `work_mem` (x1.3 / x0.9) are not applied, as in pgtune's default form.

use serde::Serialize;

use crate::profile::{Storage, Workload};

const MB: u64 = 1024;
const GB: u64 = 1024 * MB;

/// The tuning input of a profile: PostgreSQL's declared resources and workload. render and
/// audit both take it from here.
pub fn input(profile: &crate::profile::Profile) -> TuningInput {
    let limits = &profile.resources.postgres;
    TuningInput {
        memory_kb: limits.memory.kib(),
        cpus: (limits.cpus.ceil() as u32).max(1),
        workload: profile.postgres.workload,
        storage: profile.postgres.storage,
        max_connections: profile.postgres.max_connections,
    }
}

/// Tuning inputs.
#[derive(Debug, Clone, Copy)]
pub struct TuningInput {
    /// Memory in kB.
    pub memory_kb: u64,
    /// CPUs (fractions round up).
    pub cpus: u32,
    pub workload: Workload,
    pub storage: Storage,
    /// 0 takes pgtune's value for the workload.
    pub max_connections: u32,
}

/// Every setting pgtune emits, formatted as postgresql.conf values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tuning {
    pub max_connections: u32,
    pub shared_buffers: String,
    pub effective_cache_size: String,
    pub maintenance_work_mem: String,
    pub checkpoint_completion_target: &'static str,
    pub wal_buffers: String,
    pub default_statistics_target: u32,
    pub random_page_cost: &'static str,
    pub effective_io_concurrency: u32,
    pub work_mem: String,
    pub huge_pages: &'static str,
    pub min_wal_size: &'static str,
    pub max_wal_size: &'static str,
    /// Present only with 4 or more CPUs.
    pub parallel: Option<Parallel>,
    /// `off` for web, oltp and mixed.
    pub jit: Option<&'static str>,
    pub wal_compression: &'static str,
    /// desktop only: `minimal` and 0.
    pub wal_level: Option<&'static str>,
    pub max_wal_senders: Option<u32>,
    /// Emitted only when maintenance_work_mem reaches 2GB.
    pub autovacuum_work_mem: Option<String>,
    pub autovacuum_max_workers: Option<u32>,
}

/// Parallelism settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Parallel {
    pub max_worker_processes: u32,
    pub max_parallel_workers_per_gather: u32,
    pub max_parallel_workers: u32,
    pub max_parallel_maintenance_workers: u32,
}

/// pgtune's unit formatting: the largest of GB, MB, kB that divides the value.
pub fn format_kb(kb: u64) -> String {
    if kb.is_multiple_of(GB) {
        format!("{}GB", kb / GB)
    } else if kb.is_multiple_of(MB) {
        format!("{}MB", kb / MB)
    } else {
        format!("{kb}kB")
    }
}

/// Computes the settings.
pub fn tune(input: TuningInput) -> Tuning {
    use Workload::*;
    let ram = input.memory_kb;
    let max_connections = match input.max_connections {
        0 => input.workload.default_max_connections(),
        n => n,
    };
    let shared_buffers = if input.workload == Desktop { ram / 16 } else { ram / 4 };
    let effective_cache_size = if input.workload == Desktop { ram / 4 } else { ram * 3 / 4 };
    let maintenance_work_mem = (if input.workload == Dw { ram / 8 } else { ram / 16 }).min(8 * GB);

    let mut wal_buffers = (shared_buffers * 3 / 100).min(16 * MB);
    if wal_buffers > 14 * MB && wal_buffers < 16 * MB {
        wal_buffers = 16 * MB;
    }
    let wal_buffers = wal_buffers.max(32);

    let (min_wal_size, max_wal_size) = match input.workload {
        Web | Mixed => ("1GB", "4GB"),
        Oltp => ("2GB", "8GB"),
        Dw => ("4GB", "16GB"),
        Desktop => ("100MB", "2GB"),
    };
    let parallel = (input.cpus >= 4).then(|| {
        let half = input.cpus.div_ceil(2);
        Parallel {
            max_worker_processes: input.cpus,
            max_parallel_workers_per_gather: if input.workload == Dw { half } else { half.min(4) },
            max_parallel_workers: input.cpus,
            max_parallel_maintenance_workers: half.min(4),
        }
    });
    let workers = if input.cpus >= 4 { u64::from(input.cpus) } else { 8 };
    let base = (ram - shared_buffers) / ((u64::from(max_connections) + workers) * 3);
    let work_mem = match input.workload {
        Web | Oltp => base,
        Dw | Mixed => base / 2,
        Desktop => base / 6,
    }
    .max(4 * MB);

    Tuning {
        max_connections,
        shared_buffers: format_kb(shared_buffers),
        effective_cache_size: format_kb(effective_cache_size),
        maintenance_work_mem: format_kb(maintenance_work_mem),
        checkpoint_completion_target: "0.9",
        wal_buffers: format_kb(wal_buffers),
        default_statistics_target: if input.workload == Dw { 500 } else { 100 },
        random_page_cost: if input.storage == Storage::Hdd { "4" } else { "1.1" },
        effective_io_concurrency: match input.storage {
            Storage::Hdd => 2,
            Storage::Ssd => 200,
            Storage::San => 300,
            Storage::Nvme => 1000,
        },
        work_mem: format_kb(work_mem),
        huge_pages: if shared_buffers >= 2 * GB { "try" } else { "off" },
        min_wal_size,
        max_wal_size,
        parallel,
        jit: matches!(input.workload, Web | Oltp | Mixed).then_some("off"),
        wal_compression: "lz4",
        wal_level: (input.workload == Desktop).then_some("minimal"),
        max_wal_senders: (input.workload == Desktop).then_some(0),
        autovacuum_work_mem: (maintenance_work_mem >= 2 * GB).then(|| format_kb(2 * GB)),
        autovacuum_max_workers: match input.cpus {
            32.. => Some(5),
            16.. => Some(4),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(gb: u64, cpus: u32, workload: Workload) -> TuningInput {
        TuningInput { memory_kb: gb * GB, cpus, workload, storage: Storage::Ssd, max_connections: 0 }
    }

    // Worked examples of pgtune's formulas (the same inputs on pgtune.leopard.in.ua give these).
    #[test]
    fn pgtune_8gb_4cpu_web() {
        let t = tune(input(8, 4, Workload::Web));
        assert_eq!(t.max_connections, 200);
        assert_eq!(t.shared_buffers, "2GB");
        assert_eq!(t.effective_cache_size, "6GB");
        assert_eq!(t.maintenance_work_mem, "512MB");
        assert_eq!(t.wal_buffers, "16MB");
        assert_eq!(t.work_mem, "10280kB");
        assert_eq!(t.huge_pages, "try");
        assert_eq!(t.parallel.as_ref().unwrap().max_parallel_workers_per_gather, 2);
    }

    #[test]
    fn pgtune_16gb_8cpu_oltp() {
        let t = tune(input(16, 8, Workload::Oltp));
        assert_eq!(t.max_connections, 300);
        assert_eq!(t.shared_buffers, "4GB");
        assert_eq!(t.effective_cache_size, "12GB");
        assert_eq!(t.maintenance_work_mem, "1GB");
        assert_eq!(t.wal_buffers, "16MB");
        assert_eq!(t.work_mem, "13617kB");
        assert_eq!((t.min_wal_size, t.max_wal_size), ("2GB", "8GB"));
    }

    #[test]
    fn pgtune_4gb_2cpu_mixed() {
        let t = tune(input(4, 2, Workload::Mixed));
        assert_eq!(t.max_connections, 100);
        assert_eq!(t.shared_buffers, "1GB");
        assert_eq!(t.effective_cache_size, "3GB");
        assert_eq!(t.maintenance_work_mem, "256MB");
        assert_eq!(t.wal_buffers, "16MB");
        assert_eq!(t.work_mem, "4854kB");
        assert_eq!(t.huge_pages, "off");
        assert_eq!(t.parallel, None);
    }

    #[test]
    fn small_memory_keeps_work_mem_floor_and_small_wal_buffers() {
        let t = tune(TuningInput {
            memory_kb: 256 * MB,
            cpus: 1,
            workload: Workload::Web,
            storage: Storage::Hdd,
            max_connections: 50,
        });
        assert_eq!(t.max_connections, 50);
        assert_eq!(t.work_mem, "4MB");
        assert_eq!(t.wal_buffers, "1966kB");
        assert_eq!(t.random_page_cost, "4");
        assert_eq!(t.effective_io_concurrency, 2);
    }
}
