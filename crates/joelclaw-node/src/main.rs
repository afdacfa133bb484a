//! `joelclaw-node`: the node agent. Until the agent lands (the "node agent" issue) it prints the
//! node's identity and refuses other verbs with a clear message.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("identity") => match node_identity::NodeIdentity::detect() {
            Ok(id) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&id).expect("identity serializes")
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("joelclaw-node: {e}");
                ExitCode::from(2)
            }
        },
        Some(verb) => {
            eprintln!(
                "joelclaw-node: `{verb}` is not supported yet: the node agent is still being built; only `identity` works"
            );
            ExitCode::from(2)
        }
    }
}
