//! Process and system figures for `stats`, from `sysinfo`.
//!
//! Lavalink reports JVM heap figures; a native process has no heap ceiling, so the
//! mapping is: `used` and `allocated` = resident set size, `free` = 0 (nothing is
//! reserved and unused), `reservable` = the memory the process may grow into (the
//! cgroup limit when one is set, else total system memory). CPU figures are
//! recomputed at most every 30 s, and the first computation reports 0.0, as Lavalink's.

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use crate::protocol::messages::{Cpu, Memory};

const CPU_REFRESH: Duration = Duration::from_secs(30);

/// Samples the OS for the `cpu` and `memory` sections of `stats`.
#[derive(Debug)]
pub struct SystemStats {
    inner: Mutex<Inner>,
    pid: Pid,
}

#[derive(Debug)]
struct Inner {
    system: System,
    cached_cpu: Option<(Instant, Cpu)>,
    baseline: Option<(Instant, Duration)>,
}

impl Default for SystemStats {
    fn default() -> Self {
        SystemStats {
            inner: Mutex::new(Inner {
                system: System::new(),
                cached_cpu: None,
                baseline: None,
            }),
            pid: Pid::from_u32(std::process::id()),
        }
    }
}

impl SystemStats {
    /// CPU load, cached for 30 s.
    pub fn cpu(&self) -> Cpu {
        let mut inner = self.inner.lock();
        if let Some((at, cpu)) = inner.cached_cpu {
            if at.elapsed() <= CPU_REFRESH {
                return cpu;
            }
        }
        let cpu = inner.measure_cpu(self.pid);
        inner.cached_cpu = Some((Instant::now(), cpu));
        cpu
    }

    /// Memory figures, sampled now.
    pub fn memory(&self) -> Memory {
        let mut inner = self.inner.lock();
        let pid = self.pid;
        inner.system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            true,
            ProcessRefreshKind::nothing().with_memory(),
        );
        inner.system.refresh_memory();
        let rss = inner.system.process(pid).map(|p| p.memory()).unwrap_or(0);
        let limit = inner
            .system
            .cgroup_limits()
            .map(|c| c.total_memory)
            .filter(|&t| t > 0)
            .unwrap_or_else(|| inner.system.total_memory());
        Memory {
            free: 0,
            used: rss,
            allocated: rss,
            reservable: limit.max(rss),
        }
    }
}

/// The standard `process_*` figures of Prometheus client libraries.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessFigures {
    /// User and system CPU time since start, seconds.
    pub cpu_seconds: f64,
    /// Start time, seconds since the Unix epoch.
    pub start_time_seconds: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The open file descriptor limit.
    pub max_fds: u64,
    /// Virtual memory size, bytes.
    pub virtual_memory_bytes: u64,
    /// Resident set size, bytes.
    pub resident_memory_bytes: u64,
}

impl SystemStats {
    /// This process's figures, sampled now.
    pub fn process(&self) -> ProcessFigures {
        let mut inner = self.inner.lock();
        let pid = self.pid;
        inner.system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            true,
            ProcessRefreshKind::nothing().with_memory().with_cpu(),
        );
        let Some(p) = inner.system.process(pid) else {
            return ProcessFigures::default();
        };
        ProcessFigures {
            cpu_seconds: p.accumulated_cpu_time() as f64 / 1000.0,
            start_time_seconds: p.start_time(),
            open_fds: p.open_files().unwrap_or(0) as u64,
            max_fds: p.open_files_limit().unwrap_or(0) as u64,
            virtual_memory_bytes: p.virtual_memory(),
            resident_memory_bytes: p.memory(),
        }
    }
}

impl Inner {
    fn measure_cpu(&mut self, pid: Pid) -> Cpu {
        let first = self.cached_cpu.is_none();
        self.system.refresh_cpu_usage();
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            true,
            ProcessRefreshKind::nothing().with_cpu(),
        );
        let cores = self.system.cpus().len().max(1) as u32;
        let system_load = if first {
            0.0
        } else {
            f64::from(self.system.global_cpu_usage()) / 100.0
        };
        let process_load = self.process_load(pid, cores);
        Cpu {
            cores,
            system_load: clamp_unit(system_load),
            lavalink_load: clamp_unit(process_load),
        }
    }

    /// Process CPU time over wall time since the previous sample, per core.
    fn process_load(&mut self, pid: Pid, cores: u32) -> f64 {
        let Some(process) = self.system.process(pid) else {
            return 0.0;
        };
        let cpu_time = Duration::from_millis(process.accumulated_cpu_time());
        let now = Instant::now();
        let load = match self.baseline {
            Some((at, prev)) => {
                let wall = now.duration_since(at).as_secs_f64();
                if wall > 0.0 {
                    cpu_time.saturating_sub(prev).as_secs_f64() / wall / f64::from(cores)
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        self.baseline = Some((now, cpu_time));
        load
    }
}

fn clamp_unit(v: f64) -> f64 {
    if v.is_finite() {
        v.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_cpu_sample_is_zero_and_cached() {
        let s = SystemStats::default();
        let a = s.cpu();
        assert_eq!(a.system_load, 0.0);
        assert_eq!(a.lavalink_load, 0.0);
        assert!(a.cores >= 1);
        assert_eq!(s.cpu(), a, "cached for 30 s");
    }

    #[test]
    fn memory_reports_resident_set() {
        let m = SystemStats::default().memory();
        assert!(
            m.used > 1 << 20,
            "a running test binary has more than 1 MiB resident"
        );
        assert_eq!(m.used, m.allocated);
        assert!(m.reservable >= m.used);
    }

    #[test]
    fn second_sample_measures_this_process() {
        let s = SystemStats::default();
        s.cpu();
        let mut x = 0u64;
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(300) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let cpu = s.inner.lock().measure_cpu(s.pid);
        assert!(
            cpu.lavalink_load > 0.0,
            "a busy loop shows as process load: {cpu:?}"
        );
    }
}
