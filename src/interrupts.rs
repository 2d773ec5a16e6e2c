//! Cancel and terminate requests reach long waits through here.

pub fn check() {
    pgrx::check_for_interrupts!();
}
