//! swimlb speaker: answers ARP and NDP for the VIPs its node owns.

pub mod packet;
