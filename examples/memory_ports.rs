//! The ports in five calls, on the in-memory adapters: enable a service, see it, crash it, heal
//! it by hand. Run: `cargo run -p joelclaw-examples --example memory_ports`.

use process_manager::{
    ExitStatus, LabelPattern, MemoryProcessManager, ProcessManagerPort, ServiceConfig, ServiceLabel,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pm = MemoryProcessManager::new();
    let label = ServiceLabel::new("com.joelclaw.demo-worker")?;
    let config =
        ServiceConfig::new(label.clone(), "/usr/bin/env").with_env("PATH", "/usr/bin:/bin");
    println!("enable:  {:?}", pm.enable(&config).await?);
    println!("again:   {:?}", pm.enable(&config).await?);
    pm.crash(&label, ExitStatus::Signal(9));
    println!("crashed: {:?}", pm.inspect(&label).await?.state);
    println!("restart: {:?}", pm.restart(&label).await?);
    for s in pm.list(&LabelPattern::new("com.joelclaw.*")).await? {
        println!("{} {} pid={:?}", s.label, s.state, s.pid);
    }
    Ok(())
}
