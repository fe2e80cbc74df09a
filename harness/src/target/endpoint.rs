//! An already-running runtime reached through `--endpoint` (and `--image-endpoint`). cricket
//! neither starts nor stops it.

use futures::FutureExt;
use futures::future::BoxFuture;
use tonic::transport::Channel;

use super::{StartError, StartOptions, Target, TargetInfo, describe};
use crate::client;

pub struct Endpoint {
    info: TargetInfo,
    runtime: Channel,
    image: Channel,
    socket: Option<std::path::PathBuf>,
}

impl Endpoint {
    pub async fn connect(
        endpoint: &str,
        image_endpoint: Option<&str>,
        opts: &StartOptions,
    ) -> Result<Self, StartError> {
        let uri = client::normalize_endpoint(endpoint).map_err(StartError)?;
        let image_uri = match image_endpoint {
            Some(i) => client::normalize_endpoint(i).map_err(StartError)?,
            None => uri.clone(),
        };
        let reach = |u: &str, e: String| StartError(format!("cannot reach endpoint {u}: {e}"));
        let runtime = client::connect(&uri, opts.ready_timeout)
            .await
            .map_err(|e| reach(&uri, e))?;
        let image = if image_uri == uri {
            runtime.clone()
        } else {
            client::connect(&image_uri, opts.ready_timeout)
                .await
                .map_err(|e| reach(&image_uri, e))?
        };
        let info = describe("endpoint", &uri, &image_uri, runtime.clone(), image.clone())
            .await
            .map_err(|e| reach(&uri, e))?;
        let socket = uri.strip_prefix("unix://").map(std::path::PathBuf::from);
        Ok(Self {
            info,
            runtime,
            image,
            socket,
        })
    }
}

impl Target for Endpoint {
    fn info(&self) -> &TargetInfo {
        &self.info
    }

    fn channels(&self) -> (Channel, Channel) {
        (self.runtime.clone(), self.image.clone())
    }

    fn check_alive(&self) -> Result<(), String> {
        // Not our process: the best cheap signal is that its socket still exists. RPC deadlines
        // catch a runtime that hangs.
        match &self.socket {
            Some(p) if !p.exists() => Err(format!("endpoint socket {} disappeared", p.display())),
            _ => Ok(()),
        }
    }

    fn stop(&mut self) -> BoxFuture<'_, anyhow::Result<()>> {
        async { Ok(()) }.boxed()
    }
}
