//! What an interrupted restore must not leave behind. SIGTERM (`docker stop`), SIGINT and
//! SIGHUP are blocked in every thread and taken by one thread of ours (sigwait), which ends
//! the running client tools (their transaction rolls back on the server), runs the cleanup the
//! restore or the drill registered (drop the database this run created, record the drill's
//! failure) and exits with 128 + the signal's number.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Set once a signal was taken: from then on only the signal's thread speaks and exits.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

type Cleanup = Box<dyn FnOnce(&str) + Send>;

struct State {
    children: Vec<u32>,
    cleanup: Option<Cleanup>,
}

static STATE: Mutex<State> = Mutex::new(State {
    children: Vec::new(),
    cleanup: None,
});

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

const SIGNALS: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

fn signal_set() -> libc::sigset_t {
    // SAFETY: sigemptyset and sigaddset initialise and fill a set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in SIGNALS {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Blocks the signals in this thread (and so in every thread started later) and starts the
/// thread that waits for them. Call before any other thread starts. Child processes start with
/// an empty signal mask (the standard library resets it).
pub fn watch_signals() {
    let set = signal_set();
    // SAFETY: changes this thread's signal mask only.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    std::thread::spawn(move || loop {
        let mut sig: libc::c_int = 0;
        // SAFETY: waits for one of the blocked signals of `set`.
        if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
            continue;
        }
        interrupted(sig);
    });
}

fn interrupted(sig: libc::c_int) -> ! {
    let name = match sig {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        _ => "SIGHUP",
    };
    INTERRUPTED.store(true, Ordering::SeqCst);
    let (children, cleanup) = {
        let mut s = state();
        (std::mem::take(&mut s.children), s.cleanup.take())
    };
    for pid in children {
        // SAFETY: signals a child of ours that has not been reaped (it is removed from the
        // list before it is waited for), so the PID is still its own.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
    }
    if let Some(c) = cleanup {
        c(name);
    }
    std::process::exit(128 + sig);
}

/// Waits forever once interrupted: the failures the main thread sees then are the signal's
/// doing (its children were ended), and the signal's thread says so, cleans up and exits.
pub fn hold_if_interrupted() {
    while INTERRUPTED.load(Ordering::SeqCst) {
        std::thread::park();
    }
}

/// A child that an interruption must end.
pub fn started(pid: u32) {
    state().children.push(pid);
}

/// Call before waiting for a child that [`started`] was told of.
pub fn ending(pid: u32) {
    state().children.retain(|p| *p != pid);
}

/// What an interruption runs (given the signal's name), until [`disarm`].
pub fn on_interrupt(f: impl FnOnce(&str) + Send + 'static) {
    state().cleanup = Some(Box::new(f));
}

pub fn disarm() {
    state().cleanup = None;
}
