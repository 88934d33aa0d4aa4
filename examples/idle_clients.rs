//! Opens N authenticated PostgreSQL connections and holds them idle (for RSS-per-client
//! measurements). Usage: `idle_clients URL N`; prints `ready N` once all are up, then holds
//! them until stdin closes.

use std::sync::Arc;

use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;
use tokio_postgres::NoTls;

/// Connection attempts in flight at once.
const PARALLEL: usize = 64;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(n)) = (args.next(), args.next()) else {
        return Err("usage: idle_clients URL N".into());
    };
    let n: usize = n.parse()?;
    let config: tokio_postgres::Config = url.parse()?;
    let gate = Arc::new(Semaphore::new(PARALLEL));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (config, gate) = (config.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await?;
            let (client, conn) = config.connect(NoTls).await?;
            drop(permit);
            let driver = tokio::spawn(conn);
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((client, driver))
        }));
    }
    let mut held = Vec::with_capacity(n);
    for t in tasks {
        held.push(t.await??);
    }
    println!("ready {}", held.len());
    let mut sink = Vec::new();
    tokio::io::stdin().read_to_end(&mut sink).await?;
    Ok(())
}
