//! The connection limits: a slot under `max_connections`, and one per peer
//! address under `max_connections_per_ip`, each held until the connection ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::metrics::metrics;

/// One open connection, counted until dropped.
pub(super) struct Slot(Arc<AtomicUsize>);

impl Slot {
    pub(super) fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        if open.fetch_add(1, Ordering::AcqRel) >= max {
            open.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        metrics().connection_opened();
        Some(Slot(open.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        metrics().connection_closed();
    }
}

/// Open connections by peer address.
pub(super) type PerIp = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// One connection counted against its peer address until dropped; an address
/// with none left open leaves the table.
pub(super) struct IpSlot {
    table: PerIp,
    ip: IpAddr,
}

impl IpSlot {
    pub(super) fn take(table: &PerIp, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let mut open = table.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            table: table.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if let std::collections::hash_map::Entry::Occupied(mut n) = open.entry(self.ip) {
            *n.get_mut() -= 1;
            if *n.get() == 0 {
                n.remove();
            }
        }
    }
}
