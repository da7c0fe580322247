//! The restart policy: a pure state machine deciding what to do when an instance exits.
