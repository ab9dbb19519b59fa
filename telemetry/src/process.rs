//! The conventional `process_*` metrics of the running process, read from `/proc` on every
//! scrape: the parsing is pure ([`parse_stat`], [`parse_boot_time`], [`parse_resident_bytes`],
//! [`parse_max_open_files`], [`sample`]); only [`ProcessCollector`] reads files. A file that
//! cannot be read or parsed (another OS, a locked-down `/proc`) leaves its metrics out of the
//! scrape instead of failing it.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// Clock ticks per second in `/proc/<pid>/stat` and `/proc/stat` (`USER_HZ`): fixed at 100 in
/// the kernel's ABI on every architecture Linux userspace sees.
pub const USER_HZ: f64 = 100.0;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcError {
    #[error("no closing parenthesis after the command name")]
    NoCommand,
    #[error("field {0} is missing")]
    Missing(&'static str),
    #[error("field {field} is not a number: {value:?}")]
    NotANumber { field: &'static str, value: String },
}

/// The fields of `/proc/<pid>/stat` the metrics use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// User and system CPU time, in clock ticks.
    pub utime: u64,
    pub stime: u64,
    /// Start time after boot, in clock ticks.
    pub starttime: u64,
    /// Virtual memory size in bytes.
    pub vsize: u64,
}

fn number(field: &'static str, value: Option<&str>) -> Result<u64, ProcError> {
    let value = value.ok_or(ProcError::Missing(field))?;
    value.parse().map_err(|_| ProcError::NotANumber {
        field,
        value: value.to_owned(),
    })
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may hold spaces
/// and parentheses itself, so the fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Result<Stat, ProcError> {
    let (_, rest) = text.rsplit_once(')').ok_or(ProcError::NoCommand)?;
    // rest starts with field 3 (state): field n is at index n - 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).copied();
    Ok(Stat {
        utime: number("utime", field(14))?,
        stime: number("stime", field(15))?,
        starttime: number("starttime", field(22))?,
        vsize: number("vsize", field(23))?,
    })
}

/// The words after `key` on the first line of `text` that starts with it.
fn words_after<'a>(
    text: &'a str,
    key: &'static str,
) -> Result<std::str::SplitWhitespace<'a>, ProcError> {
    text.lines()
        .find_map(|line| line.strip_prefix(key))
        .map(str::split_whitespace)
        .ok_or(ProcError::Missing(key))
}

/// The boot time in seconds since the epoch: the `btime` line of `/proc/stat`.
pub fn parse_boot_time(text: &str) -> Result<u64, ProcError> {
    number("btime", words_after(text, "btime ")?.next())
}

/// The resident set size in bytes: the `VmRSS:` line of `/proc/<pid>/status` (in kB).
pub fn parse_resident_bytes(text: &str) -> Result<u64, ProcError> {
    let mut words = words_after(text, "VmRSS:")?;
    let kib = number("VmRSS", words.next())?;
    match words.next() {
        Some("kB") => Ok(kib.saturating_mul(1024)),
        _ => Err(ProcError::Missing("VmRSS unit kB")),
    }
}

/// The soft limit on open files: the `Max open files` line of `/proc/<pid>/limits`; `None`
/// when it is `unlimited`.
pub fn parse_max_open_files(text: &str) -> Result<Option<u64>, ProcError> {
    match words_after(text, "Max open files")?.next() {
        Some("unlimited") => Ok(None),
        soft => number("Max open files", soft).map(Some),
    }
}

/// The files a sample is taken from, as read (`None`: could not be read).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcFiles {
    /// `/proc/self/stat`.
    pub stat: Option<String>,
    /// `/proc/self/status`.
    pub status: Option<String>,
    /// `/proc/self/limits`.
    pub limits: Option<String>,
    /// `/proc/stat`.
    pub system_stat: Option<String>,
    /// Entries of `/proc/self/fd`.
    pub open_fds: Option<u64>,
}

/// One reading of the process metrics; each `None` is left out of the scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessSample {
    pub cpu_seconds: Option<f64>,
    pub resident_memory_bytes: Option<u64>,
    pub virtual_memory_bytes: Option<u64>,
    pub start_time_seconds: Option<f64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
}

/// Turns the files into the metrics' values.
pub fn sample(files: &ProcFiles) -> ProcessSample {
    let stat = files.stat.as_deref().and_then(|t| parse_stat(t).ok());
    let boot = files
        .system_stat
        .as_deref()
        .and_then(|t| parse_boot_time(t).ok());
    ProcessSample {
        cpu_seconds: stat.map(|s| (s.utime + s.stime) as f64 / USER_HZ),
        resident_memory_bytes: files
            .status
            .as_deref()
            .and_then(|t| parse_resident_bytes(t).ok()),
        virtual_memory_bytes: stat.map(|s| s.vsize),
        start_time_seconds: stat
            .zip(boot)
            .map(|(s, boot)| boot as f64 + s.starttime as f64 / USER_HZ),
        open_fds: files.open_fds,
        max_fds: files
            .limits
            .as_deref()
            .and_then(|t| parse_max_open_files(t).ok())
            .flatten(),
    }
}

/// Reads this process's files under `/proc`.
pub fn read_proc_files() -> ProcFiles {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    ProcFiles {
        stat: read("/proc/self/stat"),
        status: read("/proc/self/status"),
        limits: read("/proc/self/limits"),
        system_stat: read("/proc/stat"),
        open_fds: std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|entries| entries.count() as u64),
    }
}

/// Writes the process metrics on every scrape.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessCollector;

impl ProcessCollector {
    fn encode_sample(
        sample: &ProcessSample,
        mut encoder: DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        if let Some(seconds) = sample.cpu_seconds {
            let counter = ConstCounter::new(seconds);
            counter.encode(encoder.encode_descriptor(
                "process_cpu",
                "Total user and system CPU time spent in seconds.",
                Some(&Unit::Seconds),
                counter.metric_type(),
            )?)?;
        }
        let whole = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let gauges: [(&str, &str, Option<Unit>, Option<i64>); 4] = [
            (
                "process_open_fds",
                "Number of open file descriptors.",
                None,
                sample.open_fds.map(whole),
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors (the soft limit).",
                None,
                sample.max_fds.map(whole),
            ),
            (
                "process_virtual_memory",
                "Virtual memory size in bytes.",
                Some(Unit::Bytes),
                sample.virtual_memory_bytes.map(whole),
            ),
            (
                "process_resident_memory",
                "Resident memory size in bytes.",
                Some(Unit::Bytes),
                sample.resident_memory_bytes.map(whole),
            ),
        ];
        for (name, help, unit, value) in gauges {
            let Some(value) = value else { continue };
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(
                name,
                help,
                unit.as_ref(),
                gauge.metric_type(),
            )?)?;
        }
        if let Some(seconds) = sample.start_time_seconds {
            let gauge = ConstGauge::new(seconds);
            gauge.encode(encoder.encode_descriptor(
                "process_start_time",
                "Start time of the process since the Unix epoch in seconds.",
                Some(&Unit::Seconds),
                gauge.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        Self::encode_sample(&sample(&read_proc_files()), encoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    const STAT: &str = "4242 (swimlb (x) y) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
        250 125 0 0 20 0 9 0 50000 123456789 2500 18446744073709551615 1 1 0 0 0 0 0 4096 \
        17927 0 0 0 17 1 0 0 0 0 0\n";

    const LIMITS: &str = "\
Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 524288               files
Max locked memory         8388608              8388608              bytes
";

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        assert_eq!(
            parse_stat(STAT),
            Ok(Stat {
                utime: 250,
                stime: 125,
                starttime: 50000,
                vsize: 123456789,
            })
        );
        assert_eq!(parse_stat("4242 swimlb S 1"), Err(ProcError::NoCommand));
        assert_eq!(
            parse_stat("4242 (swimlb) S 1 2 3"),
            Err(ProcError::Missing("utime"))
        );
        let garbled = STAT.replace(" 250 ", " 2x0 ");
        assert!(matches!(
            parse_stat(&garbled),
            Err(ProcError::NotANumber { field: "utime", .. })
        ));
    }

    #[test]
    fn status_limits_and_boot_time() {
        let status = "Name:\tswimlb\nVmPeak:\t  20000 kB\nVmRSS:\t    6144 kB\nThreads:\t9\n";
        assert_eq!(parse_resident_bytes(status), Ok(6144 * 1024));
        assert_eq!(
            parse_resident_bytes("Name:\tx\n"),
            Err(ProcError::Missing("VmRSS:"))
        );
        assert!(parse_resident_bytes("VmRSS:\t 12 pages\n").is_err());
        assert_eq!(parse_max_open_files(LIMITS), Ok(Some(1024)));
        assert_eq!(
            parse_max_open_files(&LIMITS.replace("1024 ", "unlimited ")),
            Ok(None)
        );
        assert!(parse_max_open_files("Limit Soft\n").is_err());
        let system = "cpu  1 2 3\nintr 5\nctxt 99\nbtime 1764000000\nprocesses 77\n";
        assert_eq!(parse_boot_time(system), Ok(1_764_000_000));
        assert_eq!(
            parse_boot_time("cpu 1\n"),
            Err(ProcError::Missing("btime "))
        );
    }

    #[test]
    fn a_sample_combines_the_files_and_leaves_out_what_is_missing() {
        let files = ProcFiles {
            stat: Some(STAT.to_owned()),
            status: Some("VmRSS:\t 100 kB\n".to_owned()),
            limits: Some(LIMITS.to_owned()),
            system_stat: Some("btime 1764000000\n".to_owned()),
            open_fds: Some(12),
        };
        assert_eq!(
            sample(&files),
            ProcessSample {
                cpu_seconds: Some(3.75),
                resident_memory_bytes: Some(102_400),
                virtual_memory_bytes: Some(123_456_789),
                start_time_seconds: Some(1_764_000_500.0),
                open_fds: Some(12),
                max_fds: Some(1024),
            }
        );
        let partial = ProcFiles {
            stat: Some(STAT.to_owned()),
            ..ProcFiles::default()
        };
        let got = sample(&partial);
        assert_eq!(got.cpu_seconds, Some(3.75));
        assert_eq!(got.start_time_seconds, None);
        assert_eq!(sample(&ProcFiles::default()), ProcessSample::default());
    }

    #[derive(Debug)]
    struct Fixed(ProcessSample);

    impl Collector for Fixed {
        fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            ProcessCollector::encode_sample(&self.0, encoder)
        }
    }

    #[test]
    fn the_collector_writes_the_conventional_names() {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Fixed(ProcessSample {
            cpu_seconds: Some(3.75),
            resident_memory_bytes: Some(102_400),
            virtual_memory_bytes: None,
            start_time_seconds: Some(1_764_000_500.0),
            open_fds: Some(12),
            max_fds: Some(1024),
        })));
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
            .expect("encodes");
        for needle in [
            "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 3.75\n",
            "# TYPE process_open_fds gauge\nprocess_open_fds 12\n",
            "process_max_fds 1024\n",
            "process_resident_memory_bytes 102400\n",
            "process_start_time_seconds 1764000500.0\n",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert!(!text.contains("virtual_memory"), "{text}");
    }

    #[test]
    fn this_process_can_be_read() {
        let got = sample(&read_proc_files());
        if cfg!(target_os = "linux") {
            assert!(got.cpu_seconds.is_some());
            assert!(got.resident_memory_bytes.is_some_and(|b| b > 0));
            assert!(got.virtual_memory_bytes.is_some_and(|b| b > 0));
            assert!(got.open_fds.is_some_and(|n| n >= 3));
            assert!(got.start_time_seconds.is_some_and(|s| s > 1.0e9));
        }
    }
}
