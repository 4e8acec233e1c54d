//! The event pump: host event records into the guest event queue, driven by the VMM.
//!
//! [`AcceleratedSmmu::pump`] reads everything the host event source has and hands each record
//! (its StreamID already the guest's vSID) to the device, which writes it into the guest event
//! queue with its interrupt. A report of lost records ([`EventItem::Lost`]) becomes the guest
//! queue's overflow flag (OVFLG toggles once until the guest acknowledges it), the architectural
//! way of saying "event records were lost". A record for a vSID that is no longer host-backed
//! (it arrived after a hot detach) is dropped and counted.
//!
//! A VMM with an event loop polls [`AcceleratedSmmu::poll_fd`] and calls `pump` when it is
//! readable; one without calls [`AcceleratedSmmu::spawn_event_thread`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use viommu_common::StreamId;
use viommu_smmuv3::device::GuestRam;

use super::{lock, AcceleratedSmmu};
use crate::error::EventError;
use crate::events::EventItem;
use crate::host::{AttachPort, HostEventSource, HostViommu};

/// Counters of the event pump.
#[derive(Debug, Default)]
pub(crate) struct PumpCounters {
    pub(crate) injected: AtomicU64,
    pub(crate) lost_reports: AtomicU64,
    pub(crate) dropped: AtomicU64,
}

/// What the event pump has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PumpStats {
    /// Records written into the guest event queue (or discarded by it while disabled).
    pub injected: u64,
    /// Lost-record reports turned into the guest's overflow flag.
    pub lost_reports: u64,
    /// Records dropped because their vSID is no longer host-backed.
    pub dropped: u64,
}

impl<M, V, P, E> AcceleratedSmmu<M, V, P, E>
where
    M: GuestRam,
    V: HostViommu + 'static,
    P: AttachPort + 'static,
    E: HostEventSource,
{
    /// Read everything the host event source has now (without blocking) and inject it into the
    /// guest event queue, in host order. Returns the number of records injected.
    ///
    /// # Errors
    /// [`EventError`] if the host read failed or returned a truncated record; the whole records
    /// read before it are still injected. After [`teardown`](Self::teardown): `Ok(0)`.
    pub fn pump(&self) -> Result<usize, EventError> {
        // Held while injecting so that concurrent pumps keep the host's order.
        let mut source = lock(&self.events);
        let Some(src) = source.as_mut() else {
            return Ok(0);
        };
        let mut items = Vec::new();
        let read = src.read_available(&mut items);
        let mut injected = 0;
        for item in &items {
            match item {
                EventItem::Record(e) => {
                    if self.smmu.is_host_backed(StreamId(e.vsid())) {
                        self.smmu.inject_host_event(e.record.words());
                        injected += 1;
                    } else {
                        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                EventItem::Lost { .. } => {
                    self.smmu.host_events_lost();
                    self.counters.lost_reports.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.counters
            .injected
            .fetch_add(injected as u64, Ordering::Relaxed);
        read.map(|_| injected)
    }

    /// Counters of the event pump.
    pub fn pump_stats(&self) -> PumpStats {
        PumpStats {
            injected: self.counters.injected.load(Ordering::Relaxed),
            lost_reports: self.counters.lost_reports.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
        }
    }

    /// The host event source's fd, for the VMM's epoll (readable: call [`pump`](Self::pump)).
    /// Valid until [`teardown`](Self::teardown); `None` for a source without one (the recording
    /// backend), which a VMM pumps on its own schedule.
    pub fn poll_fd(&self) -> Option<std::os::fd::RawFd> {
        self.event_fd
    }
}

impl<M, V, P, E> AcceleratedSmmu<M, V, P, E>
where
    M: GuestRam + 'static,
    V: HostViommu + 'static,
    P: AttachPort + Send + 'static,
    E: HostEventSource + 'static,
{
    /// Pump events on a thread of its own: it waits up to `timeout` for the event fd to become
    /// readable (or sleeps `timeout` when there is no fd), pumps, and repeats until stopped. A
    /// pump error ends the thread; [`EventThread::stop`] returns it.
    ///
    /// # Errors
    /// The thread or its epoll instance could not be created.
    pub fn spawn_event_thread(self: &Arc<Self>, timeout: Duration) -> std::io::Result<EventThread> {
        let stop = Arc::new(AtomicBool::new(false));
        let waiter = Waiter::new(self.event_fd)?;
        let me = Arc::clone(self);
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("viommu-accel-events".into())
            .spawn(move || {
                let mut total = 0u64;
                while !flag.load(Ordering::Acquire) {
                    waiter.wait(timeout);
                    total += me.pump()? as u64;
                }
                Ok(total)
            })?;
        Ok(EventThread {
            stop,
            handle: Some(handle),
        })
    }
}

/// A running event pump thread ([`AcceleratedSmmu::spawn_event_thread`]). Dropping it stops
/// and joins the thread.
#[derive(Debug)]
pub struct EventThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<u64, EventError>>>,
}

impl EventThread {
    /// Ask the thread to stop (it notices within one wait timeout), wait for it, and return the
    /// number of records it injected, or the pump error that ended it.
    ///
    /// # Errors
    /// The [`EventError`] that ended the thread, or `EventError::Host` with `EIO` if it panicked.
    pub fn stop(mut self) -> Result<u64, EventError> {
        self.join()
    }

    /// True once the thread has ended (stopped, or ended by a pump error).
    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(|h| h.is_finished())
    }

    fn join(&mut self) -> Result<u64, EventError> {
        self.stop.store(true, Ordering::Release);
        match self.handle.take().map(JoinHandle::join) {
            None => Ok(0),
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(EventError::Host {
                op: crate::error::HostOp::VeventqRead,
                errno: crate::error::Errno::EIO,
            }),
        }
    }
}

impl Drop for EventThread {
    fn drop(&mut self) {
        let _ = self.join();
    }
}

/// Waits for the event fd (epoll) or, without one, sleeps.
enum Waiter {
    Sleep,
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    Epoll(vmm_sys_util::epoll::Epoll),
}

impl Waiter {
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    fn new(fd: Option<std::os::fd::RawFd>) -> std::io::Result<Self> {
        use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
        let Some(fd) = fd else {
            return Ok(Self::Sleep);
        };
        let ep = Epoll::new()?;
        ep.ctl(ControlOperation::Add, fd, EpollEvent::new(EventSet::IN, 0))?;
        Ok(Self::Epoll(ep))
    }

    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    fn new(_fd: Option<std::os::fd::RawFd>) -> std::io::Result<Self> {
        Ok(Self::Sleep)
    }

    fn wait(&self, timeout: Duration) {
        match self {
            Self::Sleep => std::thread::sleep(timeout),
            #[cfg(all(
                target_os = "linux",
                any(target_arch = "x86_64", target_arch = "aarch64")
            ))]
            Self::Epoll(ep) => {
                let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
                let mut ev = [vmm_sys_util::epoll::EpollEvent::default(); 1];
                // readiness or timeout: either way the pump reads what is there
                let _ = ep.wait(ms, &mut ev);
            }
        }
    }
}
