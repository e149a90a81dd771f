//! Lowering the scheduling priority of the hashing threads.
//!
//! A hash keeps a CPU busy for tens of milliseconds. At the same priority as the server's
//! request threads, a request that arrives while every CPU is hashing waits for the scheduler
//! to take a CPU away from a hash, which adds milliseconds to its latency. A higher nice value
//! shortens that wait but does not remove it: Linux lets the running thread finish the time
//! slice it was given, a few milliseconds, before a woken thread of any nice value takes the
//! CPU. Under the idle policy the woken thread takes the CPU at once.
//!
//! Only Linux keeps a priority per thread; elsewhere lowering the priority of one thread
//! would lower the whole process, so nothing is changed there.

use crate::hasher::HashingPriority;

/// The highest nice value Linux accepts: the lowest priority.
const LOWEST_NICE: i32 = 19;

/// A thread's nice value as it was when the thread started, and the priority it has been
/// given since.
#[derive(Debug)]
pub(crate) struct ThreadPriority {
    inherited: i32,
    applied: Option<HashingPriority>,
}

impl ThreadPriority {
    /// The calling thread's priority, as inherited from the thread that spawned it.
    pub(crate) fn of_this_thread() -> Self {
        Self {
            inherited: os::current_nice(),
            applied: None,
        }
    }

    /// Gives the calling thread `wanted`, unless it has it already. Raising the priority again
    /// needs a privilege servers rarely have; a refusal is logged once for each priority asked
    /// for, and the thread keeps the priority it has (and is not asked again for the same one).
    pub(crate) fn apply(&mut self, wanted: HashingPriority) {
        if self.applied == Some(wanted) {
            return;
        }
        let outcome = match wanted {
            HashingPriority::Idle => os::enter_idle_policy(),
            HashingPriority::LoweredBy(steps) => os::leave_idle_policy().and_then(|()| {
                os::set_nice(
                    self.inherited
                        .saturating_add(i32::from(steps))
                        .min(LOWEST_NICE),
                )
            }),
        };
        if let Err(cause) = outcome {
            tracing::warn!(
                ?wanted,
                %cause,
                "password-hashing thread keeps its scheduling priority"
            );
        }
        self.applied = Some(wanted);
    }
}

#[cfg(target_os = "linux")]
mod os {
    use std::io::Error;

    use thread_priority::ThreadPriority;
    use thread_priority::unix::{
        NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
        thread_native_id, thread_schedule_policy,
    };

    const IDLE: ThreadSchedulePolicy =
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    const NORMAL: ThreadSchedulePolicy =
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other);

    pub(super) fn current_nice() -> i32 {
        // Without a process id, Linux reads and sets the nice value of the calling thread alone.
        rustix::process::getpriority_process(None).unwrap_or(0)
    }

    pub(super) fn set_nice(nice: i32) -> Result<(), Error> {
        rustix::process::setpriority_process(None, nice).map_err(Error::from)
    }

    /// Puts the calling thread under `SCHED_IDLE`, keeping its nice value. The crate sets nice
    /// 0 after the policy, which a thread above nice 0 either gets (with privilege) or is
    /// refused; the idle policy ignores nice values, so only the policy counts, and the nice
    /// value the thread had is put back so that it shows the one it had.
    pub(super) fn enter_idle_policy() -> Result<(), Error> {
        let nice = current_nice();
        match set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, IDLE) {
            Ok(()) => {}
            Err(_) if is_idle()? => {}
            Err(error) => return Err(Error::other(error)),
        }
        set_nice(nice)
    }

    /// Puts the calling thread back under the normal policy if it is under the idle one.
    pub(super) fn leave_idle_policy() -> Result<(), Error> {
        if is_idle()? {
            set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, NORMAL)
                .map_err(Error::other)?;
        }
        Ok(())
    }

    pub(super) fn is_idle() -> Result<bool, Error> {
        Ok(thread_schedule_policy().map_err(Error::other)? == IDLE)
    }
}

#[cfg(not(target_os = "linux"))]
mod os {
    use std::io::Error;

    pub(super) fn current_nice() -> i32 {
        0
    }

    pub(super) fn set_nice(_nice: i32) -> Result<(), Error> {
        Ok(())
    }

    pub(super) fn enter_idle_policy() -> Result<(), Error> {
        Ok(())
    }

    pub(super) fn leave_idle_policy() -> Result<(), Error> {
        Ok(())
    }

    pub(super) fn is_idle() -> Result<bool, Error> {
        Ok(false)
    }
}

/// The calling thread's nice value and whether it is under the idle policy, for tests.
#[cfg(test)]
pub(crate) fn priority_of_this_thread() -> (i32, bool) {
    (os::current_nice(), os::is_idle().unwrap_or(false))
}
