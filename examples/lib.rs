//! Runnable examples (`cargo run -p joelclaw-examples --example NAME`) and demo inventories
//! (`*.toml` beside this file).
