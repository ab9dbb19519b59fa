//! Checks of a running binary's `/metrics` shared by the speaker's and the controller's
//! integration tests (included with `#[path]`): the process with its log, a GET with a chosen
//! `Accept` header, the address a binary logs, and `promtool check metrics` on the text format.
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The series every swimlb binary exports besides its own: the beginnings of their lines.
pub const COMMON_SERIES: [&str; 6] = [
    "process_cpu_seconds_total ",
    "process_open_fds ",
    "process_max_fds ",
    "process_virtual_memory_bytes ",
    "process_resident_memory_bytes ",
    "process_start_time_seconds ",
];

/// A binary started with its output in a log file; killed when dropped, the log shown when
/// the test failed.
pub struct Running {
    pub child: Child,
    pub log: PathBuf,
}

impl Running {
    pub fn start(mut command: Command, log: PathBuf) -> Self {
        let file = File::create(&log).expect("log file");
        let child = command
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("the binary starts");
        Self { child, log }
    }

    /// The value of `key=` on the first line of the log that contains `marker`.
    pub fn logged(&self, marker: &str, key: &str) -> Option<String> {
        let text = std::fs::read_to_string(&self.log).ok()?;
        let line = text.lines().find(|l| l.contains(marker))?;
        line.split_whitespace()
            .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_owned)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- log ({}):\n{text}", self.log.display());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts that `text` has each of `lines` as a whole line and a line starting with each of
/// `prefixes`, `build_info` (`<prefix>_build_info{version="...`) and [`COMMON_SERIES`].
pub fn assert_series(text: &str, prefix: &str, lines: &[&str], prefixes: &[&str]) {
    for line in lines {
        assert!(
            text.lines().any(|l| l == *line),
            "missing {line:?} in:\n{text}"
        );
    }
    let build_info = format!("{prefix}_build_info{{version=\"");
    let all = prefixes
        .iter()
        .copied()
        .chain(COMMON_SERIES)
        .chain([build_info.as_str()]);
    for start in all {
        assert!(
            text.lines().any(|l| l.starts_with(start)),
            "missing {start:?} in:\n{text}"
        );
    }
}

/// One HTTP response: status code, lower-cased `Content-Type`, body.
pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

/// A plain HTTP/1.0 GET of `path` on `address` with `accept` as the Accept header.
pub fn get(address: &str, path: &str, accept: &str) -> Option<Response> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {address}\r\nAccept: {accept}\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let content_type = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-type"))
        .map(|(_, value)| value.trim().to_ascii_lowercase())
        .unwrap_or_default();
    Some(Response {
        status,
        content_type,
        body: body.to_owned(),
    })
}

/// Runs `promtool check metrics` on `text`: `None` when promtool is not installed (allowed
/// only outside CI: with `CI=true` its absence fails the test), else its exit status and
/// everything it printed.
pub fn promtool_check(text: &str) -> Option<(bool, String)> {
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "promtool is not installed (scripts/setup.sh installs Debian's prometheus package)"
            );
            eprintln!(
                "SKIPPED: promtool is not installed; run scripts/setup.sh to lint /metrics with it"
            );
            return None;
        }
        Err(error) => panic!("cannot run promtool: {error}"),
    };
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(text.as_bytes())
        .expect("writing promtool's stdin");
    let output = child.wait_with_output().expect("promtool finishes");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Some((output.status.success(), printed))
}

/// Fetches `/metrics` from `address` in both formats and checks them: the text format passes
/// `promtool check metrics` with no finding, OpenMetrics is served when asked for. Returns
/// the text format.
pub fn check_metrics(address: &str) -> String {
    let text = get(address, "/metrics", "text/plain").expect("GET /metrics");
    assert_eq!(text.status, 200, "{}", text.body);
    assert_eq!(
        text.content_type, "text/plain; version=0.0.4; charset=utf-8",
        "the text format's content type"
    );
    assert!(!text.body.contains("# EOF"), "{}", text.body);
    if let Some((ok, printed)) = promtool_check(&text.body) {
        assert!(
            ok && printed.trim().is_empty(),
            "promtool check metrics found problems:\n{printed}\nin:\n{}",
            text.body
        );
        eprintln!("promtool check metrics: no findings");
    }
    let openmetrics = get(
        address,
        "/metrics",
        "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    )
    .expect("GET /metrics as OpenMetrics");
    assert_eq!(openmetrics.status, 200);
    assert!(
        openmetrics
            .content_type
            .starts_with("application/openmetrics-text; version=1.0.0"),
        "{}",
        openmetrics.content_type
    );
    assert!(
        openmetrics.body.ends_with("# EOF\n"),
        "{}",
        openmetrics.body
    );
    text.body
}
