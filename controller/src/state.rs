//! The allocation decision: which addresses each Service holds, as a pure function of the pools
//! and the Services seen so far. No I/O; the Kubernetes edge feeds it and writes its answers.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::allocator::{Family, PoolAllocator, is_buggy};
use crate::config::{Pool, PoolSet};
use crate::service::{RequestError, ServiceKey, ServiceRequest, Sharing, TrafficPolicy};

pub use swimlb_api::ClassFilter;

/// Why two Services cannot share an address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SharingConflict {
    #[error("it is not shared (no allow-shared-ip key on both)")]
    NotShared,
    #[error("allow-shared-ip keys differ ({ours:?} vs {theirs:?})")]
    DifferentKey { ours: String, theirs: String },
    #[error("externalTrafficPolicy differs")]
    TrafficPolicy,
    #[error("externalTrafficPolicy Local needs the same pod selector")]
    Selector,
    #[error("port {protocol}/{port} is used by both")]
    Port { protocol: String, port: i32 },
}

/// Why a Service gets no address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AllocationError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("no address pool is configured")]
    NoPools,
    #[error("pool {0:?} does not exist")]
    UnknownPool(String),
    #[error("pool {pool:?} is invalid: {errors}")]
    InvalidPool { pool: String, errors: String },
    #[error("no pool with auto-assign serves this Service")]
    NoMatchingPool,
    #[error("no free {families} address in pool(s) {pools}")]
    Exhausted { families: String, pools: String },
    #[error("requested address {0} is not in any pool")]
    NotInAnyPool(IpAddr),
    #[error("requested address {ip} is not in the requested pool {pool:?}")]
    NotInRequestedPool { ip: IpAddr, pool: String },
    #[error("requested addresses {0} are in different pools")]
    DifferentPools(String),
    #[error("requested address {ip} is {family} but the Service's ipFamilies allow {allowed}")]
    FamilyNotAllowed {
        ip: IpAddr,
        family: Family,
        allowed: Family,
    },
    #[error("requested address {ip} ends in .0 or .255 and pool {pool:?} avoids such addresses")]
    Buggy { ip: IpAddr, pool: String },
    #[error("address {ip} is in use by {holder}: {conflict}")]
    InUse {
        ip: IpAddr,
        holder: ServiceKey,
        conflict: SharingConflict,
    },
}

impl AllocationError {
    /// A short CamelCase word for metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            AllocationError::Request(_) => "BadRequest",
            AllocationError::NoPools => "NoPools",
            AllocationError::UnknownPool(_) => "UnknownPool",
            AllocationError::InvalidPool { .. } => "InvalidPool",
            AllocationError::NoMatchingPool => "NoMatchingPool",
            AllocationError::Exhausted { .. } => "PoolExhausted",
            AllocationError::NotInAnyPool(_) => "NotInAnyPool",
            AllocationError::NotInRequestedPool { .. } => "NotInRequestedPool",
            AllocationError::DifferentPools(_) => "DifferentPools",
            AllocationError::FamilyNotAllowed { .. } => "FamilyNotAllowed",
            AllocationError::Buggy { .. } => "AvoidedAddress",
            AllocationError::InUse { .. } => "AddressInUse",
        }
    }
}

/// The outcome of one Service's reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The Service holds these addresses, primary family first.
    Assigned {
        ips: Vec<IpAddr>,
        pool: Option<String>,
    },
    /// The Service gets no address and stays pending.
    Pending(AllocationError),
    /// Not swimlb's Service (not a LoadBalancer, or another class); anything held was released.
    NotOurs,
}

/// What one Service holds.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Holding {
    ips: Vec<IpAddr>,
    pool: Option<String>,
    sharing: Sharing,
}

/// Addresses in use and free per pool, for status and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolUsage {
    pub total_v4: u128,
    pub total_v6: u128,
    pub in_use_v4: u128,
    pub available_v4: u128,
    pub in_use_v6: u128,
    pub available_v6: u128,
}

/// Every pool and every Service's addresses.
#[derive(Clone, Debug, Default)]
pub struct AllocationState {
    class_filter: ClassFilter,
    pools: PoolSet,
    /// One allocator per valid pool.
    allocators: BTreeMap<String, PoolAllocator>,
    /// Every held address and the Services holding it (more than one only when shared).
    /// A sorted `Vec`, not a set: almost every address has one holder, and a one-element
    /// B-tree costs a whole node.
    holders: BTreeMap<IpAddr, Vec<ServiceKey>>,
    services: BTreeMap<ServiceKey, Holding>,
    /// Services by sharing key, to find addresses to share.
    by_sharing_key: BTreeMap<String, BTreeSet<ServiceKey>>,
}

fn sharing_conflict(ours: &Sharing, theirs: &Sharing) -> Option<SharingConflict> {
    let (Some(our_key), Some(their_key)) = (&ours.key, &theirs.key) else {
        return Some(SharingConflict::NotShared);
    };
    if our_key != their_key {
        return Some(SharingConflict::DifferentKey {
            ours: our_key.clone(),
            theirs: their_key.clone(),
        });
    }
    match (&ours.traffic_policy, &theirs.traffic_policy) {
        (TrafficPolicy::Cluster, TrafficPolicy::Cluster) => {}
        (TrafficPolicy::Local { selector: a }, TrafficPolicy::Local { selector: b }) => {
            if a != b {
                return Some(SharingConflict::Selector);
            }
        }
        _ => return Some(SharingConflict::TrafficPolicy),
    }
    // Both port lists are sorted and short.
    ours.ports
        .iter()
        .find(|p| theirs.ports.binary_search(p).is_ok())
        .map(|(protocol, port)| SharingConflict::Port {
            protocol: protocol.clone(),
            port: *port,
        })
}

fn join<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

impl AllocationState {
    pub fn new(class_filter: ClassFilter) -> Self {
        Self {
            class_filter,
            ..Self::default()
        }
    }

    pub fn pools(&self) -> &PoolSet {
        &self.pools
    }

    /// Replaces the pool configuration. Addresses Services hold stay theirs, whatever the new
    /// configuration says; only new allocations follow it.
    pub fn set_pools(&mut self, pools: PoolSet) {
        self.allocators = pools
            .iter()
            .filter(|p| p.is_valid())
            .map(|p| {
                let ranges: Vec<_> = p.ranges.iter().map(|(_, r)| *r).collect();
                (
                    p.name.clone(),
                    PoolAllocator::new(&ranges, p.avoid_buggy_ips),
                )
            })
            .collect();
        self.pools = pools;
        let held: Vec<IpAddr> = self.holders.keys().copied().collect();
        for ip in held {
            if let Some(allocator) = self.allocator_containing_mut(ip) {
                allocator.mark_used(ip);
            }
        }
    }

    fn allocator_containing_mut(&mut self, ip: IpAddr) -> Option<&mut PoolAllocator> {
        self.allocators.values_mut().find(|a| a.contains(ip))
    }

    /// The valid pool whose ranges hold `ip`.
    fn valid_pool_of(&self, ip: IpAddr) -> Option<&str> {
        self.allocators
            .iter()
            .find(|(_, a)| a.contains(ip))
            .map(|(name, _)| name.as_str())
    }

    /// Names of every pool (valid or not) whose ranges hold `ip`.
    fn pools_containing(&self, ip: IpAddr) -> Vec<&Pool> {
        self.pools
            .iter()
            .chain(self.pools.shadowed())
            .filter(|p| p.contains(ip))
            .collect()
    }

    /// The addresses a Service holds.
    pub fn addresses_of(&self, key: &ServiceKey) -> Option<&[IpAddr]> {
        self.services.get(key).map(|h| h.ips.as_slice())
    }

    /// The Services holding an address.
    pub fn holders_of(&self, ip: IpAddr) -> impl Iterator<Item = &ServiceKey> {
        self.holders.get(&ip).into_iter().flatten()
    }

    /// How many Services hold addresses.
    pub fn assigned_count(&self) -> usize {
        self.services.len()
    }

    /// Releases whatever a Service holds; true when it held something.
    pub fn remove(&mut self, key: &ServiceKey) -> bool {
        let Some(holding) = self.services.remove(key) else {
            return false;
        };
        if let Some(sharing_key) = &holding.sharing.key
            && let Some(keys) = self.by_sharing_key.get_mut(sharing_key)
        {
            keys.remove(key);
            if keys.is_empty() {
                self.by_sharing_key.remove(sharing_key);
            }
        }
        for ip in holding.ips {
            let now_free = match self.holders.get_mut(&ip) {
                Some(keys) => {
                    keys.retain(|k| k != key);
                    keys.is_empty()
                }
                None => false,
            };
            if now_free {
                self.holders.remove(&ip);
                if let Some(allocator) = self.allocator_containing_mut(ip) {
                    allocator.release(ip);
                }
            }
        }
        true
    }

    /// Who else holds `ip` and whether `sharing` may join them.
    fn check_shareable(
        &self,
        ip: IpAddr,
        key: &ServiceKey,
        sharing: &Sharing,
    ) -> Result<(), AllocationError> {
        for holder in self.holders_of(ip).filter(|h| *h != key) {
            let Some(theirs) = self.services.get(holder) else {
                continue;
            };
            if let Some(conflict) = sharing_conflict(sharing, &theirs.sharing) {
                return Err(AllocationError::InUse {
                    ip,
                    holder: holder.clone(),
                    conflict,
                });
            }
        }
        Ok(())
    }

    /// Records a holding; every address must have passed `check_shareable`.
    fn commit(
        &mut self,
        key: &ServiceKey,
        ips: &[IpAddr],
        pool: Option<String>,
        sharing: &Sharing,
    ) {
        for &ip in ips {
            let keys = self.holders.entry(ip).or_default();
            let first_holder = keys.is_empty();
            if let Err(at) = keys.binary_search(key) {
                keys.insert(at, key.clone());
            }
            if first_holder && let Some(allocator) = self.allocator_containing_mut(ip) {
                allocator.mark_used(ip);
            }
        }
        if let Some(sharing_key) = &sharing.key {
            self.by_sharing_key
                .entry(sharing_key.clone())
                .or_default()
                .insert(key.clone());
        }
        self.services.insert(
            key.clone(),
            Holding {
                ips: ips.to_vec(),
                pool,
                sharing: sharing.clone(),
            },
        );
    }

    /// Decides a Service's addresses. Keeps what it holds (or, after a restart, what its status
    /// shows) while that still fits its request; otherwise allocates anew.
    pub fn reconcile(&mut self, request: &ServiceRequest) -> Decision {
        let key = &request.key;
        if !request.is_load_balancer
            || !self
                .class_filter
                .accepts(request.load_balancer_class.as_deref())
        {
            self.remove(key);
            return Decision::NotOurs;
        }
        let requested = match &request.requested_ips {
            Ok(ips) => ips.clone(),
            Err(e) => {
                self.remove(key);
                return Decision::Pending(e.clone().into());
            }
        };

        let previous = self.services.get(key).cloned();
        let (held, held_pool) = match &previous {
            Some(h) => (h.ips.clone(), h.pool.clone()),
            None => (request.current_ips.clone(), request.current_pool.clone()),
        };
        // Release first so a re-check sees only the other holders; nothing else runs between.
        self.remove(key);
        if !held.is_empty()
            && self.still_fits(request, &requested, &held)
            && held
                .iter()
                .all(|&ip| self.check_shareable(ip, key, &request.sharing).is_ok())
        {
            let pool = held
                .iter()
                .find_map(|&ip| self.pools_containing(ip).first().map(|p| p.name.clone()))
                .or(held_pool);
            self.commit(key, &held, pool.clone(), &request.sharing);
            return Decision::Assigned { ips: held, pool };
        }

        let result = if requested.is_empty() {
            self.allocate_from_pools(request)
        } else {
            self.allocate_requested(request, &requested)
        };
        match result {
            Ok((ips, pool)) => {
                self.commit(key, &ips, Some(pool.clone()), &request.sharing);
                Decision::Assigned {
                    ips,
                    pool: Some(pool),
                }
            }
            Err(e) => Decision::Pending(e),
        }
    }

    /// Whether addresses a Service holds still answer its request. Pool configuration alone
    /// never disqualifies them (an invalid or removed pool takes nothing away).
    fn still_fits(&self, request: &ServiceRequest, requested: &[IpAddr], held: &[IpAddr]) -> bool {
        let families: BTreeSet<Family> = held.iter().map(|&ip| Family::of(ip)).collect();
        if families.len() != held.len() || held.len() > request.families.wanted().len() {
            return false;
        }
        if !held
            .iter()
            .all(|&ip| request.families.allows(Family::of(ip)))
        {
            return false;
        }
        if request.families.policy == crate::service::FamilyPolicy::RequireDualStack
            && families.len() < 2
        {
            return false;
        }
        if !requested.is_empty() {
            let wanted: BTreeSet<&IpAddr> = requested.iter().collect();
            let have: BTreeSet<&IpAddr> = held.iter().collect();
            if wanted != have {
                return false;
            }
        }
        if let Some(pool) = &request.requested_pool {
            return held.iter().all(|&ip| {
                let containing = self.pools_containing(ip);
                containing.is_empty() || containing.iter().any(|p| &p.name == pool)
            });
        }
        true
    }

    fn allocate_requested(
        &mut self,
        request: &ServiceRequest,
        requested: &[IpAddr],
    ) -> Result<(Vec<IpAddr>, String), AllocationError> {
        let mut pool_name: Option<String> = None;
        for (i, &ip) in requested.iter().enumerate() {
            let family = Family::of(ip);
            if !request.families.allows(family)
                || (i > 0 && requested.len() > request.families.wanted().len())
            {
                return Err(AllocationError::FamilyNotAllowed {
                    ip,
                    family,
                    allowed: request.families.primary(),
                });
            }
            let name = match self.valid_pool_of(ip) {
                Some(name) => name.to_owned(),
                None => {
                    return Err(match self.pools_containing(ip).first() {
                        Some(pool) => AllocationError::InvalidPool {
                            pool: pool.name.clone(),
                            errors: pool.error_summary(),
                        },
                        None => AllocationError::NotInAnyPool(ip),
                    });
                }
            };
            if let Some(wanted) = &request.requested_pool
                && *wanted != name
            {
                return Err(AllocationError::NotInRequestedPool {
                    ip,
                    pool: wanted.clone(),
                });
            }
            if pool_name.as_ref().is_some_and(|p| *p != name) {
                return Err(AllocationError::DifferentPools(join(requested)));
            }
            let avoids = self.pools.get(&name).is_some_and(|p| p.avoid_buggy_ips);
            if avoids && is_buggy(ip) {
                return Err(AllocationError::Buggy { ip, pool: name });
            }
            self.check_shareable(ip, &request.key, &request.sharing)?;
            pool_name = Some(name);
        }
        // `requested` is non-empty, so a pool was found.
        Ok((requested.to_vec(), pool_name.unwrap_or_default()))
    }

    /// Pools a Service may get addresses from without asking for one, in the order to try.
    fn candidate_pools(&self, request: &ServiceRequest) -> Result<Vec<String>, AllocationError> {
        if let Some(name) = &request.requested_pool {
            let pool = self
                .pools
                .get(name)
                .ok_or_else(|| AllocationError::UnknownPool(name.clone()))?;
            if !pool.is_valid() {
                return Err(AllocationError::InvalidPool {
                    pool: name.clone(),
                    errors: pool.error_summary(),
                });
            }
            return Ok(vec![name.clone()]);
        }
        if self.pools.is_empty() {
            return Err(AllocationError::NoPools);
        }
        let mut matched: Vec<(u32, &str)> = Vec::new();
        let mut open: Vec<&str> = Vec::new();
        for pool in self.pools.iter().filter(|p| p.is_valid() && p.auto_assign) {
            match &pool.allocation {
                None => open.push(&pool.name),
                Some(allocation) => {
                    if allocation.matches(
                        &request.key.namespace,
                        &request.namespace_labels,
                        &request.labels,
                    ) {
                        matched.push((allocation.rank(), &pool.name));
                    }
                }
            }
        }
        matched.sort();
        let candidates: Vec<String> = matched
            .into_iter()
            .map(|(_, name)| name)
            .chain(open)
            .map(str::to_owned)
            .collect();
        if candidates.is_empty() {
            return Err(AllocationError::NoMatchingPool);
        }
        Ok(candidates)
    }

    /// The address of `family` a Service would get from `pool`: one it may share, else the
    /// lowest free one.
    fn pick(&self, pool: &str, family: Family, request: &ServiceRequest) -> Option<IpAddr> {
        let allocator = self.allocators.get(pool)?;
        if let Some(sharing_key) = &request.sharing.key {
            let shareable = self
                .by_sharing_key
                .get(sharing_key)
                .into_iter()
                .flatten()
                .filter(|k| **k != request.key)
                .filter_map(|k| self.services.get(k))
                .flat_map(|h| h.ips.iter().copied())
                .filter(|&ip| Family::of(ip) == family && allocator.contains(ip))
                .filter(|&ip| {
                    self.check_shareable(ip, &request.key, &request.sharing)
                        .is_ok()
                })
                .min();
            if shareable.is_some() {
                return shareable;
            }
        }
        allocator.peek_lowest(family)
    }

    fn allocate_from_pools(
        &mut self,
        request: &ServiceRequest,
    ) -> Result<(Vec<IpAddr>, String), AllocationError> {
        let candidates = self.candidate_pools(request)?;
        let wanted = request.families.wanted();
        let dual_required =
            request.families.policy == crate::service::FamilyPolicy::RequireDualStack;
        let mut partial: Option<(Vec<IpAddr>, String)> = None;
        for pool in &candidates {
            let picks: Vec<IpAddr> = wanted
                .iter()
                .filter_map(|&family| self.pick(pool, family, request))
                .collect();
            if picks.len() == wanted.len() {
                return Ok((picks, pool.clone()));
            }
            // Prefer-dual-stack settles for the primary family, or the other, when no pool has
            // both.
            if !dual_required && !picks.is_empty() && partial.is_none() {
                partial = Some((picks, pool.clone()));
            }
        }
        partial.ok_or_else(|| AllocationError::Exhausted {
            families: join(wanted.iter()).replace(',', "+"),
            pools: join(&candidates),
        })
    }

    /// Addresses in total, in use and free in a pool. Invalid pools offer nothing; their total
    /// counts the ranges that parsed, their in-use count what Services still hold there.
    pub fn usage(&self, pool: &Pool) -> PoolUsage {
        if pool.is_valid()
            && let Some(allocator) = self.allocators.get(&pool.name)
        {
            return PoolUsage {
                total_v4: allocator.size(Family::V4),
                total_v6: allocator.size(Family::V6),
                in_use_v4: allocator.in_use(Family::V4),
                available_v4: allocator.available(Family::V4),
                in_use_v6: allocator.in_use(Family::V6),
                available_v6: allocator.available(Family::V6),
            };
        }
        let mut usage = PoolUsage::default();
        for (_, range) in &pool.ranges {
            let total = match range.family() {
                Family::V4 => &mut usage.total_v4,
                Family::V6 => &mut usage.total_v6,
            };
            *total = total.saturating_add(range.len());
        }
        for ip in self.holders.keys().filter(|&&ip| pool.contains(ip)) {
            match Family::of(*ip) {
                Family::V4 => usage.in_use_v4 += 1,
                Family::V6 => usage.in_use_v6 += 1,
            }
        }
        usage
    }

    /// Orders Services for a first pass after start-up: those whose status already shows
    /// addresses first, so no new Service can take an address someone holds. Within each group
    /// the input order (creation order) is kept.
    pub fn startup_order(requests: &mut [ServiceRequest]) {
        requests.sort_by_key(|r| r.current_ips.is_empty());
    }
}

#[cfg(test)]
mod tests;
