//! ImageService: the gRPC face of the image store and puller. Errors carry the gRPC code
//! api.proto implies and a message naming the bad value.

use std::sync::Arc;

use cricket_proto::ImageService;
use cricket_proto::v1::{
    FilesystemIdentifier, FilesystemUsage, Image, ImageFsInfoRequest, ImageFsInfoResponse,
    ImageSpec, ImageStatusRequest, ImageStatusResponse, Int64Value, ListImagesRequest,
    ListImagesResponse, PullImageRequest, PullImageResponse, RemoveImageRequest,
    RemoveImageResponse, StreamImagesRequest, StreamImagesResponse, UInt64Value,
};
use tonic::{Request, Response, Status};

type ImageStream = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<StreamImagesResponse, Status>> + Send>,
>;

use crate::image::protocol::{Credentials, PullError};
use crate::image::pull::Puller;
use crate::image::store::{ImageRecord, ImageStore, image_user};

#[derive(Clone)]
pub struct Images {
    pub store: Arc<ImageStore>,
    pub puller: Arc<Puller>,
    pub faults: crate::fault::Faults,
}

fn to_cri(r: &ImageRecord) -> Image {
    let (uid, username) = image_user(&r.config.user);
    Image {
        id: r.id.clone(),
        repo_tags: r.repo_tags.clone(),
        repo_digests: r.repo_digests.clone(),
        size: r.size,
        uid: uid.map(|value| Int64Value { value }),
        username,
        spec: Some(ImageSpec {
            image: r.id.clone(),
            ..Default::default()
        }),
        pinned: false,
    }
}

fn image_name(spec: Option<&ImageSpec>, field: &str) -> Result<String, Status> {
    let name = spec.map(|s| s.image.trim()).unwrap_or_default();
    if name.is_empty() {
        return Err(Status::invalid_argument(format!(
            "{field}.image is required"
        )));
    }
    Ok(name.to_string())
}

impl From<PullError> for Status {
    fn from(e: PullError) -> Self {
        match e {
            PullError::InvalidReference(m) => Status::invalid_argument(m),
            PullError::NotFound(m) => Status::not_found(m),
            PullError::Unauthenticated(m) => Status::unauthenticated(m),
            PullError::Unavailable(m) => Status::unavailable(m),
            PullError::BadContent(m) => Status::data_loss(m),
            PullError::Refused(m) => Status::invalid_argument(m),
            PullError::Unsupported(m) => Status::unimplemented(m),
            PullError::Internal(m) => Status::internal(m),
        }
    }
}

#[tonic::async_trait]
impl ImageService for Images {
    async fn list_images(
        &self,
        request: Request<ListImagesRequest>,
    ) -> Result<Response<ListImagesResponse>, Status> {
        let filter = request
            .into_inner()
            .filter
            .and_then(|f| f.image)
            .map(|s| s.image)
            .filter(|s| !s.is_empty());
        let images = match filter {
            Some(name) => self.store.find(&name).iter().map(to_cri).collect(),
            None => self.store.list().iter().map(to_cri).collect(),
        };
        Ok(Response::new(ListImagesResponse { images }))
    }

    async fn stream_images(
        &self,
        request: Request<StreamImagesRequest>,
    ) -> Result<Response<ImageStream>, Status> {
        let filter = request
            .into_inner()
            .filter
            .and_then(|f| f.image)
            .map(|s| s.image)
            .filter(|s| !s.is_empty());
        let images: Vec<Image> = match filter {
            Some(name) => self.store.find(&name).iter().map(to_cri).collect(),
            None => self.store.list().iter().map(to_cri).collect(),
        };
        // api.proto: each item in exactly one response, then EOF.
        let batches: Vec<Result<StreamImagesResponse, Status>> = images
            .chunks(100)
            .map(|c| Ok(StreamImagesResponse { images: c.to_vec() }))
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(batches))))
    }

    async fn image_status(
        &self,
        request: Request<ImageStatusRequest>,
    ) -> Result<Response<ImageStatusResponse>, Status> {
        let req = request.into_inner();
        let name = image_name(req.image.as_ref(), "ImageStatusRequest.image")?;
        let Some(rec) = self.store.find(&name) else {
            // api.proto: "If the image is not present, returns a response with
            // ImageStatusResponse.Image set to nil."
            return Ok(Response::new(ImageStatusResponse::default()));
        };
        let mut info = std::collections::HashMap::new();
        if req.verbose {
            let v = serde_json::json!({
                "manifestDigest": rec.manifest_digest,
                "config": rec.config,
                "layers": rec.layers,
                "rootfs": self.store.rootfs_path(&rec.rootfs),
            });
            info.insert("info".to_string(), v.to_string());
        }
        let mut image = to_cri(&rec);
        if self.faults.has(crate::fault::Fault::ImageStatusNoTags) {
            image.repo_tags.clear();
        }
        Ok(Response::new(ImageStatusResponse {
            image: Some(image),
            info,
        }))
    }

    async fn pull_image(
        &self,
        request: Request<PullImageRequest>,
    ) -> Result<Response<PullImageResponse>, Status> {
        let req = request.into_inner();
        let name = image_name(req.image.as_ref(), "PullImageRequest.image")?;
        let creds = match &req.auth {
            Some(a) => {
                Credentials::from_auth(&a.username, &a.password, &a.auth, &a.registry_token)?
            }
            None => None,
        };
        let rec = self.puller.pull(&self.store, &name, creds).await?;
        Ok(Response::new(PullImageResponse { image_ref: rec.id }))
    }

    async fn remove_image(
        &self,
        request: Request<RemoveImageRequest>,
    ) -> Result<Response<RemoveImageResponse>, Status> {
        let name = image_name(
            request.into_inner().image.as_ref(),
            "RemoveImageRequest.image",
        )?;
        // api.proto: idempotent; removing one name removes the image with all its tags.
        if self.faults.has(crate::fault::Fault::RemoveKeepsOtherTags) {
            self.store.untag(&name)
        } else {
            self.store.remove(&name)
        }
        .map_err(|e| Status::internal(format!("removing {name}: {e}")))?;
        Ok(Response::new(RemoveImageResponse {}))
    }

    async fn image_fs_info(
        &self,
        _request: Request<ImageFsInfoRequest>,
    ) -> Result<Response<ImageFsInfoResponse>, Status> {
        let store = self.store.clone();
        let (bytes, inodes) = tokio::task::spawn_blocking(move || store.usage())
            .await
            .map_err(|e| Status::internal(format!("measuring the image store: {e}")))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        let usage = FilesystemUsage {
            timestamp: now,
            fs_id: Some(FilesystemIdentifier {
                mountpoint: self.store.dir().display().to_string(),
            }),
            used_bytes: Some(UInt64Value { value: bytes }),
            inodes_used: Some(UInt64Value { value: inodes }),
        };
        Ok(Response::new(ImageFsInfoResponse {
            image_filesystems: vec![usage],
            container_filesystems: Vec::new(),
        }))
    }
}
