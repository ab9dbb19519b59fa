// memberlist-probe joins a hashicorp/memberlist cluster and prints every membership change
// with a wall-clock timestamp, so the lab can time memberlist's down-detection next to
// swimlb's for the same node failures.
//
// Output, one line per event on stdout: "<unix seconds.nanoseconds> <event> <member>", event
// one of ready, join, dead, left, update. Built in GOPATH mode against Debian's
// golang-github-hashicorp-memberlist-dev (memberlist 0.2.2); see tests/lab/lab.sh.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
)

// events prints membership changes as they are delivered.
type events struct{}

func stamp(event, member string) {
	now := time.Now()
	fmt.Printf("%d.%09d %s %s\n", now.Unix(), now.Nanosecond(), event, member)
}

func (events) NotifyJoin(n *memberlist.Node) { stamp("join", n.Name) }

// NotifyLeave is called both for members declared dead and for members that left.
func (events) NotifyLeave(n *memberlist.Node) {
	if n.State == memberlist.StateLeft {
		stamp("left", n.Name)
	} else {
		stamp("dead", n.Name)
	}
}

func (events) NotifyUpdate(n *memberlist.Node) { stamp("update", n.Name) }

// config returns memberlist's configuration for a named timing set.
func config(timings string) (*memberlist.Config, error) {
	conf := memberlist.DefaultLANConfig()
	switch timings {
	case "lan":
		// What MetalLB runs: probe every 1 s, 500 ms timeout, suspicion 4 × max(1, log10 n) s.
	case "fast":
		// swimlb's `fast` preset: probe every 100 ms with a 30 ms timeout, gossip every 30 ms
		// to 3 members, suspicion 3 × probe interval × max(1, log10 n) = 300 ms up to 10
		// members. memberlist's own suspicion rule still applies: without a confirmation from
		// another member the timeout starts at SuspicionMaxTimeoutMult times that.
		conf.ProbeInterval = 100 * time.Millisecond
		conf.ProbeTimeout = 30 * time.Millisecond
		conf.SuspicionMult = 3
		conf.GossipInterval = 30 * time.Millisecond
		conf.GossipNodes = 3
	default:
		return nil, fmt.Errorf("unknown timings %q (lan or fast)", timings)
	}
	return conf, nil
}

// absentPeers returns the peer addresses at which no live member is known.
func absentPeers(list *memberlist.Memberlist, peers []string) []string {
	live := map[string]bool{}
	for _, n := range list.Members() {
		live[net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))] = true
	}
	var absent []string
	for _, p := range peers {
		if !live[p] {
			absent = append(absent, p)
		}
	}
	return absent
}

func main() {
	name := flag.String("name", "", "member name (unique per process start)")
	bind := flag.String("bind", "", "address to bind and advertise")
	port := flag.Int("port", 7950, "UDP and TCP port")
	join := flag.String("join", "", "comma-separated host:port list of peers to join")
	timings := flag.String("timings", "lan", "lan (memberlist's DefaultLANConfig) or fast (swimlb's fast preset)")
	lifetime := flag.Duration("lifetime", time.Hour, "exit after this long (a bound for test runs)")
	joinFor := flag.Duration("join-for", 10*time.Second, "keep retrying the first join this long")
	rejoin := flag.Duration("rejoin", time.Second, "join again, this often, the peers with no live member (0: never)")
	flag.Parse()
	if *name == "" || *bind == "" {
		fmt.Fprintln(os.Stderr, "memberlist-probe: -name and -bind are required")
		os.Exit(2)
	}
	conf, err := config(*timings)
	if err != nil {
		fmt.Fprintln(os.Stderr, "memberlist-probe:", err)
		os.Exit(2)
	}
	conf.Name = *name
	conf.BindAddr = *bind
	conf.BindPort = *port
	conf.AdvertiseAddr = *bind
	conf.AdvertisePort = *port
	conf.Events = events{}
	conf.LogOutput = io.Discard
	list, err := memberlist.Create(conf)
	if err != nil {
		fmt.Fprintln(os.Stderr, "memberlist-probe: create:", err)
		os.Exit(1)
	}
	stamp("ready", *name)

	var peers []string
	for _, p := range strings.Split(*join, ",") {
		if p = strings.TrimSpace(p); p != "" {
			peers = append(peers, p)
		}
	}
	// The first members to start find nobody yet; the later ones join them.
	deadline := time.Now().Add(*joinFor)
	for len(peers) > 0 && time.Now().Before(deadline) {
		if n, err := list.Join(peers); err == nil && n > 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	end := time.After(*lifetime)
	// Only peers with no live member are joined: a state exchange with a live peer would
	// carry its suspicions here and change the detection times being measured.
	// memberlist by itself never merges back two sides that declared each other dead (its
	// dead-member gossip is retransmitted a few times only, and push/pull goes to live members),
	// so after a cut the probe joins its peers again, as swimlb's members rejoin theirs.
	var tick <-chan time.Time
	if *rejoin > 0 && len(peers) > 0 {
		ticker := time.NewTicker(*rejoin)
		defer ticker.Stop()
		tick = ticker.C
	}
	for {
		select {
		case <-stop:
			_ = list.Shutdown()
			return
		case <-end:
			_ = list.Shutdown()
			return
		case <-tick:
			if absent := absentPeers(list, peers); len(absent) > 0 {
				_, _ = list.Join(absent)
			}
		}
	}
}
