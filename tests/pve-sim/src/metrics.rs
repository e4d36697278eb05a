//! The node's RRD data, as `GET /nodes/{node}/lxc/{vmid}/rrddata` answers it: a sampler records every
//! running container's usage (as `pvestatd` does every 10 s on a real node), and a query consolidates
//! the samples into PVE's rows: 8.x has 70 rows per time frame (hour: 1 min, day: 30 min, week: 3 h,
//! month: 12 h, year: 1 week); 9.x reads its newer RRD files (hour: 60 rows of 1 min, day: 1440 of 1
//! min, week: 336 of 30 min, month: 1440 of 30 min, year: 1440 of 6 h) and drops a trailing row
//! that holds only `time`. Rows without samples carry only `time`, as a real node's rows before a
//! container existed do. Usage comes from the back end's counters (cgroup and veth counters with LXC) or, for
//! the inert back end, from a steady made-up load.

use crate::backend::{Backend, Usage};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// PVE 8.x's time frames: (name, resolution in seconds, rows).
pub const TIMEFRAMES_8: &[(&str, u64, u64)] = &[
    ("hour", 60, 70),
    ("day", 1800, 70),
    ("week", 10_800, 70),
    ("month", 43_200, 70),
    ("year", 604_800, 70),
];
/// PVE 9.x's time frames (the `pve-vm-9.0` RRD files).
pub const TIMEFRAMES_9: &[(&str, u64, u64)] = &[
    ("hour", 60, 60),
    ("day", 60, 1440),
    ("week", 1800, 336),
    ("month", 1800, 1440),
    ("year", 21_600, 1440),
];
/// Samples older than this are dropped (the year frame is answered from what is left).
const KEEP: Duration = Duration::from_secs(8 * 24 * 3600);

/// One sample of one container.
#[derive(Debug, Clone, Copy)]
struct Sample {
    time: u64,
    cpu: f64,
    maxcpu: f64,
    mem: f64,
    maxmem: f64,
    disk: f64,
    maxdisk: f64,
    netin: f64,
    netout: f64,
    diskread: f64,
    diskwrite: f64,
}

/// What a container is configured with, for the `max*` columns.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Cores.
    pub cores: u64,
    /// Memory, bytes.
    pub maxmem: u64,
    /// Root disk, bytes.
    pub maxdisk: u64,
}

/// The samples of every container, with the counters of the previous sample for the rates.
#[derive(Debug)]
pub struct Rrd {
    every: Duration,
    inner: Mutex<BTreeMap<u32, Series>>,
}

#[derive(Debug, Default)]
struct Series {
    samples: VecDeque<Sample>,
    last: Option<(u64, Usage)>,
}

impl Default for Rrd {
    fn default() -> Self {
        Rrd::new(Duration::from_secs(10))
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl Rrd {
    /// Samples every `every`.
    pub fn new(every: Duration) -> Self {
        Rrd {
            every,
            inner: Mutex::default(),
        }
    }

    /// How often the sampler runs.
    pub fn every(&self) -> Duration {
        self.every
    }

    /// Records one sample of running container `vmid`.
    pub fn sample(&self, backend: &dyn Backend, vmid: u32, limits: Limits) {
        let t = now();
        let usage = backend
            .usage(vmid)
            .unwrap_or_else(|| made_up(backend.uptime(vmid).unwrap_or(0), limits));
        let mut all = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let series = all.entry(vmid).or_default();
        let rate =
            |now: u64, before: u64, secs: u64| now.saturating_sub(before) as f64 / secs as f64;
        let (cpu, netin, netout, diskread, diskwrite) = match series.last {
            Some((t0, u0)) if t > t0 => {
                let secs = t - t0;
                let cores = limits.cores.max(1) as f64;
                (
                    (rate(usage.cpu_ns, u0.cpu_ns, secs) / 1e9 / cores).min(1.0),
                    rate(usage.net_in, u0.net_in, secs),
                    rate(usage.net_out, u0.net_out, secs),
                    rate(usage.disk_read, u0.disk_read, secs),
                    rate(usage.disk_write, u0.disk_write, secs),
                )
            }
            // The first sample (or two in one second) has no rates yet.
            _ => {
                series.last = Some((t, usage));
                return;
            }
        };
        series.last = Some((t, usage));
        series.samples.push_back(Sample {
            time: t,
            cpu,
            maxcpu: limits.cores as f64,
            mem: usage.mem as f64,
            maxmem: limits.maxmem as f64,
            disk: usage.disk_used as f64,
            maxdisk: limits.maxdisk as f64,
            netin,
            netout,
            diskread,
            diskwrite,
        });
        while series
            .samples
            .front()
            .is_some_and(|s| s.time + KEEP.as_secs() < t)
        {
            series.samples.pop_front();
        }
    }

    /// A stopped container's counters start over when it starts again.
    pub fn stopped(&self, vmid: u32) {
        let mut all = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = all.get_mut(&vmid) {
            s.last = None;
        }
    }

    /// The rows of `timeframe` for `vmid`, consolidated with `cf` (`AVERAGE` or `MAX`), as a 9.x
    /// node (`nine`) or an 8.x node answers; `None` for an unknown time frame.
    pub fn rows(&self, vmid: u32, timeframe: &str, cf: &str, nine: bool) -> Option<Vec<Value>> {
        self.rows_at(vmid, timeframe, cf, nine, now())
    }

    fn rows_at(
        &self,
        vmid: u32,
        timeframe: &str,
        cf: &str,
        nine: bool,
        now: u64,
    ) -> Option<Vec<Value>> {
        let frames = if nine { TIMEFRAMES_9 } else { TIMEFRAMES_8 };
        let &(_, reso, count) = frames.iter().find(|(n, _, _)| *n == timeframe)?;
        let end = now / reso * reso;
        let start = end - (count - 1) * reso;
        let all = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let samples: Vec<Sample> = all
            .get(&vmid)
            .map(|s| s.samples.iter().copied().collect())
            .unwrap_or_default();
        let mut rows: Vec<Value> = (0..count)
            .map(|i| {
                let t = start + i * reso;
                let bucket: Vec<&Sample> = samples
                    .iter()
                    .filter(|s| s.time >= t && s.time < t + reso)
                    .collect();
                row(t, &bucket, cf == "MAX")
            })
            .collect();
        if nine
            && rows
                .last()
                .and_then(Value::as_object)
                .is_some_and(|r| r.len() == 1)
        {
            rows.pop();
        }
        Some(rows)
    }
}

fn row(time: u64, bucket: &[&Sample], max: bool) -> Value {
    let mut out = Map::new();
    out.insert("time".into(), json!(time));
    if bucket.is_empty() {
        return Value::Object(out);
    }
    type Column = (&'static str, fn(&Sample) -> f64);
    let columns: [Column; 10] = [
        ("cpu", |s| s.cpu),
        ("maxcpu", |s| s.maxcpu),
        ("mem", |s| s.mem),
        ("maxmem", |s| s.maxmem),
        ("disk", |s| s.disk),
        ("maxdisk", |s| s.maxdisk),
        ("netin", |s| s.netin),
        ("netout", |s| s.netout),
        ("diskread", |s| s.diskread),
        ("diskwrite", |s| s.diskwrite),
    ];
    for (name, f) in columns {
        let values = bucket.iter().map(|s| f(s));
        let v = if max {
            values.fold(f64::MIN, f64::max)
        } else {
            values.sum::<f64>() / bucket.len() as f64
        };
        out.insert(name.into(), json!(v));
    }
    Value::Object(out)
}

/// A steady made-up load for back ends without counters: a few percent of CPU in a slow wave, an
/// eighth of the memory, a trickle of network and disk traffic.
fn made_up(uptime: u64, limits: Limits) -> Usage {
    let t = uptime as f64;
    let cpu_seconds = limits.cores as f64 * (0.03 * t + 6.0 * (t / 300.0).sin().abs());
    Usage {
        cpu_ns: (cpu_seconds * 1e9) as u64,
        mem: limits.maxmem / 8 + (limits.maxmem as f64 / 32.0 * (t / 600.0).sin().abs()) as u64,
        net_in: uptime * 2_000 + (uptime % 7) * 500,
        net_out: uptime * 800,
        disk_read: uptime * 4_096,
        disk_write: uptime * 12_288,
        disk_used: limits.maxdisk / 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_follow_the_release_and_empty_ones_carry_only_time() {
        let rrd = Rrd::default();
        let t = now();
        {
            let mut all = rrd.inner.lock().unwrap();
            let s = all.entry(101).or_default();
            for cpu in [0.2, 0.4] {
                s.samples.push_back(Sample {
                    time: t,
                    cpu,
                    maxcpu: 2.0,
                    mem: 100.0,
                    maxmem: 1000.0,
                    disk: 1.0,
                    maxdisk: 10.0,
                    netin: 10.0,
                    netout: 20.0,
                    diskread: 0.0,
                    diskwrite: 0.0,
                });
            }
        }
        for (frame, reso, count) in TIMEFRAMES_8 {
            let rows = rrd.rows_at(101, frame, "AVERAGE", false, t).unwrap();
            assert_eq!(rows.len() as u64, *count, "{frame}");
            let times: Vec<u64> = rows.iter().map(|r| r["time"].as_u64().unwrap()).collect();
            assert!(times.windows(2).all(|w| w[1] - w[0] == *reso), "{frame}");
            assert_eq!(rows[0].as_object().unwrap().len(), 1, "{frame}: only time");
        }
        // Both samples fall in the last row: their average or their maximum is reported.
        let hour = rrd.rows_at(101, "hour", "AVERAGE", false, t).unwrap();
        assert!((hour[69]["cpu"].as_f64().unwrap() - 0.3).abs() < 1e-9);
        let week_max = rrd.rows_at(101, "week", "MAX", false, t).unwrap();
        assert_eq!(week_max.last().unwrap()["cpu"], json!(0.4));
        assert!(rrd.rows(101, "decade", "AVERAGE", true).is_none());
        assert!(rrd.rows_at(999, "hour", "AVERAGE", false, t).unwrap()[69]
            .get("cpu")
            .is_none());
        // 9.x: a day is 1440 one-minute rows; without data the trailing time-only row is dropped.
        assert_eq!(
            rrd.rows_at(101, "day", "AVERAGE", true, t).unwrap().len(),
            1440
        );
        assert_eq!(
            rrd.rows_at(999, "hour", "AVERAGE", true, t).unwrap().len(),
            59
        );
    }
}
