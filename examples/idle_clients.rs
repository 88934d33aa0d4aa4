//! Opens N authenticated PostgreSQL or MySQL connections and holds them idle (for
//! RSS-per-client measurements). Usage: `idle_clients URL N` with a `postgres://` or
//! `mysql://` URL; prints `ready N` once all are up, then holds them until stdin closes.

use std::sync::Arc;

use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;
use tokio_postgres::NoTls;

/// Connection attempts in flight at once.
const PARALLEL: usize = 64;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(n)) = (args.next(), args.next()) else {
        return Err("usage: idle_clients URL N".into());
    };
    let n: usize = n.parse()?;
    let gate = Arc::new(Semaphore::new(PARALLEL));
    let held = if url.starts_with("mysql://") {
        hold_mysql(&url, n, gate).await?
    } else {
        hold_postgres(&url, n, gate).await?
    };
    println!("ready {}", held.len());
    let mut sink = Vec::new();
    tokio::io::stdin().read_to_end(&mut sink).await?;
    Ok(())
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Open connections, whatever their driver.
type Held = Vec<Box<dyn std::any::Any + Send>>;

/// Connects `n` PostgreSQL clients.
async fn hold_postgres(url: &str, n: usize, gate: Arc<Semaphore>) -> Result<Held, Error> {
    let config: tokio_postgres::Config = url.parse()?;
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (config, gate) = (config.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await?;
            let (client, conn) = config.connect(NoTls).await?;
            drop(permit);
            let driver = tokio::spawn(conn);
            Ok::<_, Error>((client, driver))
        }));
    }
    let mut held: Held = Vec::with_capacity(n);
    for t in tasks {
        held.push(Box::new(t.await??));
    }
    Ok(held)
}

/// Connects `n` MySQL clients.
async fn hold_mysql(url: &str, n: usize, gate: Arc<Semaphore>) -> Result<Held, Error> {
    let opts = mysql_async::Opts::from_url(url)?;
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (opts, gate) = (opts.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await?;
            let conn = mysql_async::Conn::new(opts).await?;
            drop(permit);
            Ok::<_, Error>(conn)
        }));
    }
    let mut held: Held = Vec::with_capacity(n);
    for t in tasks {
        held.push(Box::new(t.await??));
    }
    Ok(held)
}
