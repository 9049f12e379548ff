//! PostgreSQL from a container (feature `testcontainers`), used only when `S3O_PG_URL` is
//! unset. The image is pinned and Debian-based (glibc locales), so collation bugs that an
//! Alpine (musl) image hides show up.

use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};
use tokio::sync::OnceCell;

/// The image: PostgreSQL 16 on Debian bookworm, pinned.
pub const IMAGE: (&str, &str) = ("postgres", "16.4-bookworm");

struct Running {
    // Kept alive for the whole process: dropping it stops the container.
    _container: ContainerAsync<GenericImage>,
    url: String,
}

static CONTAINER: OnceCell<Result<Running, String>> = OnceCell::const_new();

/// The URL of the process-wide container, started on first use; `Err` when no Docker engine
/// answers or the server never becomes ready.
pub async fn url() -> Result<String, String> {
    CONTAINER
        .get_or_init(start)
        .await
        .as_ref()
        .map(|r| r.url.clone())
        .map_err(Clone::clone)
}

async fn start() -> Result<Running, String> {
    let container = GenericImage::new(IMAGE.0, IMAGE.1)
        .with_exposed_port(5432.tcp())
        .with_wait_for(WaitFor::message_on_stderr(
            "database system is ready to accept connections",
        ))
        .with_env_var("POSTGRES_HOST_AUTH_METHOD", "trust")
        .with_env_var("POSTGRES_DB", "test")
        .start()
        .await
        .map_err(|e| format!("S3O_PG_URL not set and no container: {e}"))?;
    let host = container
        .get_host()
        .await
        .map_err(|e| format!("container host: {e}"))?;
    let port = container
        .get_host_port_ipv4(5432)
        .await
        .map_err(|e| format!("container port: {e}"))?;
    let url = format!("postgres://postgres@{host}:{port}/test");
    // The entrypoint restarts the server after initdb: wait until a connection succeeds.
    let mut last = String::new();
    for _ in 0..100 {
        match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
            Ok((client, conn)) => {
                let task = tokio::spawn(conn);
                let ok = client.simple_query("SELECT 1").await.is_ok();
                drop(client);
                let _ = task.await;
                if ok {
                    return Ok(Running {
                        _container: container,
                        url,
                    });
                }
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Err(format!(
        "container PostgreSQL never accepted connections: {last}"
    ))
}
