//! Lowering the scheduling priority of the hashing threads.
//!
//! A hash keeps a CPU busy for tens of milliseconds. At the same priority as the server's
//! request threads, a request that arrives while every CPU is hashing waits for the scheduler
//! to take a CPU away from a hash, which adds milliseconds to its latency. With the hashing
//! threads at a higher nice value the scheduler hands the CPU to a woken request thread at
//! once, and hashing takes the CPU time the rest of the server leaves.
//!
//! Only Linux keeps a nice value per thread; elsewhere lowering the priority of one thread
//! would lower the whole process, so nothing is changed there.

/// The highest nice value Linux accepts: the lowest priority.
const LOWEST_PRIORITY: i32 = 19;

/// A thread's nice value as it was when the thread started, and how many steps below it the
/// thread runs now.
#[derive(Debug)]
pub(crate) struct ThreadPriority {
    inherited: i32,
    lowered_by: u8,
}

impl ThreadPriority {
    /// The calling thread's priority, as inherited from the thread that spawned it.
    pub(crate) fn of_this_thread() -> Self {
        Self {
            inherited: current_nice(),
            lowered_by: 0,
        }
    }

    /// Makes the calling thread's nice value `steps` higher than the inherited one (at most 19),
    /// unless it already is. Raising it back needs a privilege servers rarely have; a refusal
    /// is logged once for each value asked for, and the thread keeps the priority it has
    /// (and is not asked again for the same value).
    pub(crate) fn lower_by(&mut self, steps: u8) {
        if steps == self.lowered_by {
            return;
        }
        let wanted = self
            .inherited
            .saturating_add(i32::from(steps))
            .min(LOWEST_PRIORITY);
        if let Err(cause) = set_nice(wanted) {
            tracing::warn!(
                wanted,
                %cause,
                "password-hashing thread keeps its scheduling priority"
            );
        }
        self.lowered_by = steps;
    }
}

#[cfg(target_os = "linux")]
fn current_nice() -> i32 {
    // Without a process id, Linux reads and sets the nice value of the calling thread alone.
    rustix::process::getpriority_process(None).unwrap_or(0)
}

#[cfg(target_os = "linux")]
fn set_nice(nice: i32) -> Result<(), std::io::Error> {
    rustix::process::setpriority_process(None, nice).map_err(std::io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn current_nice() -> i32 {
    0
}

#[cfg(not(target_os = "linux"))]
fn set_nice(_nice: i32) -> Result<(), std::io::Error> {
    Ok(())
}

/// The calling thread's nice value, for tests.
#[cfg(test)]
pub(crate) fn nice_of_this_thread() -> i32 {
    current_nice()
}
