//! `neighbor-scan`: asks ARP (IPv4) and NDP (IPv6) for every address on standard input, in
//! rounds, and prints one line per address with every MAC that answered and the round that
//! drew the answer (`-`: none did). The lab's clients use it to check that each VIP is answered
//! by exactly one MAC.

use anyhow::{Context, bail};
use clap::Parser;
use pnet::datalink::{self, Channel};
use std::io::{BufRead, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use swimlb_neighbor_scan::{Scan, result_line};
use swimlb_speaker::packet::{self, Mac};

/// Ask for every address on standard input (one per line); print who answers.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The interface to ask on.
    #[arg(long, env = "NEIGHBOR_SCAN_INTERFACE")]
    interface: String,
    /// This host's IPv4 address (the sender of the ARP requests).
    #[arg(long)]
    ipv4: Ipv4Addr,
    /// This host's IPv6 address (the source of the neighbor solicitations).
    #[arg(long)]
    ipv6: Ipv6Addr,
    /// How long a round waits for answers after its last request.
    #[arg(long, default_value_t = 250)]
    wait_ms: u64,
    /// Rounds at most; each asks again for the addresses nobody answered yet.
    #[arg(long, default_value_t = 4)]
    rounds: usize,
}

/// Requests sent back to back before a pause, so a burst for thousands of addresses does not
/// overflow the receiving side's backlog.
const BURST: usize = 64;
const BURST_PAUSE: Duration = Duration::from_millis(1);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut addresses = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading the addresses")?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        addresses.push(
            line.parse::<IpAddr>()
                .with_context(|| format!("not an address: {line:?}"))?,
        );
    }

    let interface = datalink::interfaces()
        .into_iter()
        .find(|i| i.name == args.interface)
        .with_context(|| format!("no interface {}", args.interface))?;
    let mac = Mac(interface
        .mac
        .with_context(|| format!("{} has no MAC", args.interface))?
        .octets());
    let config = datalink::Config {
        read_timeout: Some(Duration::from_millis(20)),
        ..datalink::Config::default()
    };
    let (mut tx, mut rx) = match datalink::channel(&interface, config) {
        Ok(Channel::Ethernet(tx, rx)) => (tx, rx),
        Ok(_) => bail!("{} is not an Ethernet channel", args.interface),
        Err(e) => return Err(e).with_context(|| format!("opening {}", args.interface)),
    };

    let stop = Arc::new(AtomicBool::new(false));
    let (answers, answered) = mpsc::channel();
    let receiver_stop = Arc::clone(&stop);
    let client_v6 = args.ipv6;
    let receiver = std::thread::spawn(move || {
        while !receiver_stop.load(Ordering::Relaxed) {
            // Timeouts and errors alike: look at the stop flag and read again.
            if let Ok(frame) = rx.next()
                && let Some((address, from)) = packet::answer_to(frame, mac, client_v6)
                && answers.send((address, from, Instant::now())).is_err()
            {
                return;
            }
        }
    });

    let mut scan = Scan::new(addresses);
    for _ in 0..args.rounds {
        let pending = scan.unresolved();
        if pending.is_empty() {
            break;
        }
        for burst in pending.chunks(BURST) {
            for &address in burst {
                let frame = match address {
                    IpAddr::V4(v4) => packet::arp_request(v4, args.ipv4, mac),
                    IpAddr::V6(v6) => packet::neighbor_solicitation(v6, args.ipv6, mac),
                };
                scan.asked(address, Instant::now());
                if let Some(Err(e)) = tx.send_to(&frame, None) {
                    eprintln!("neighbor-scan: sending a request for {address}: {e}");
                }
            }
            std::thread::sleep(BURST_PAUSE);
        }
        let deadline = Instant::now() + Duration::from_millis(args.wait_ms);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match answered.recv_timeout(left) {
                Ok((address, from, at)) => scan.answered(address, from, at),
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => bail!("the receive thread ended"),
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    // The receiver sees the flag within one read timeout.
    let _ = receiver.join();

    let mut out = std::io::stdout().lock();
    for (address, answer) in scan.results() {
        writeln!(out, "{}", result_line(address, answer.as_ref()))?;
    }
    Ok(())
}
