//! `joelclaw-node`: the node agent binary. A thin `main` over [`joelclaw_node::cli`].

fn main() -> std::process::ExitCode {
    joelclaw_node::cli::main()
}
