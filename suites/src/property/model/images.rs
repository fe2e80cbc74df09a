//! The image rules: pull, remove, status.

use super::*;

impl Model {
    pub(super) fn pull(&mut self, image: u8, reply: &Reply) -> Result<(), Divergence> {
        allowed(rule::PULL, "PullImage of a fixture image", Allow::Ok, reply)?;
        let Reply::Pulled(image_ref) = reply else {
            return Err(diverge(rule::PULL, "PullImage", "an image_ref", reply));
        };
        let Some(m) = self.images.get_mut(usize::from(image)) else {
            return Ok(());
        };
        if image_ref.is_empty() {
            return Err(diverge(
                rule::PULL,
                format!("PullImage of {}", m.reference),
                "a non-empty image_ref",
                "\"\"",
            ));
        }
        if let Some(before) = &m.image_ref
            && before != image_ref
        {
            return Err(diverge(
                rule::PULL,
                format!(
                    "PullImage of {} returned another image_ref for the same image",
                    m.reference
                ),
                before.clone(),
                image_ref,
            ));
        }
        m.image_ref = Some(image_ref.clone());
        m.state = ImageState::Present;
        Ok(())
    }

    pub(super) fn remove_image(&mut self, image: u8, reply: &Reply) -> Result<(), Divergence> {
        let in_use = self.live_containers().any(|(_, c)| c.image == image);
        let Some(m) = self.images.get(usize::from(image)) else {
            return Ok(());
        };
        let allow = match m.state {
            // "must not return an error if the image has already been removed"
            ImageState::Absent => Allow::Ok,
            // The spec does not say whether an image in use may be removed.
            _ if in_use => Allow::OkOrErr,
            _ => Allow::Ok,
        };
        let what = format!(
            "RemoveImage of {}{}",
            m.reference,
            if in_use { " (in use)" } else { "" }
        );
        if allowed(rule::REMOVE_IMAGE, &what, allow, reply)?
            && let Some(m) = self.images.get_mut(usize::from(image))
        {
            m.state = ImageState::Absent;
        }
        Ok(())
    }

    pub(super) fn image_status(&mut self, image: u8, reply: &Reply) -> Result<(), Divergence> {
        allowed(rule::IMAGE_STATUS, "ImageStatus", Allow::Ok, reply)?;
        let Reply::Image(view) = reply else {
            return Err(diverge(
                rule::IMAGE_STATUS,
                "ImageStatus",
                "an image or none",
                reply,
            ));
        };
        let Some(m) = self.images.get_mut(usize::from(image)) else {
            return Ok(());
        };
        match (m.state, view) {
            (ImageState::Absent, Some(v)) => Err(diverge(
                rule::IMAGE_STATUS,
                format!(
                    "ImageStatus of {} shows an image that was removed",
                    m.reference
                ),
                "Image set to nil",
                format!("image {}", short(&v.id)),
            )),
            (ImageState::Present, None) => Err(diverge(
                rule::IMAGE_STATUS,
                format!(
                    "ImageStatus of {} shows no image although it was pulled",
                    m.reference
                ),
                "the image",
                "Image set to nil",
            )),
            (_, None) => {
                m.state = ImageState::Absent;
                Ok(())
            }
            (_, Some(v)) => {
                check_image_view(m, v)?;
                m.state = ImageState::Present;
                Ok(())
            }
        }
    }
}

fn check_image_view(m: &ImageM, v: &ImageView) -> Result<(), Divergence> {
    if !v.repo_tags.contains(&m.reference) {
        return Err(diverge(
            rule::IMAGE_STATUS,
            format!(
                "ImageStatus of {} does not list the tag it was pulled by",
                m.reference
            ),
            m.reference.clone(),
            format!("{:?}", v.repo_tags),
        ));
    }
    if let Some(r) = &m.image_ref
        && v.id != *r
        && !v.repo_digests.contains(r)
    {
        return Err(diverge(
            rule::IMAGE_STATUS,
            format!(
                "ImageStatus of {} names another image than PullImage returned",
                m.reference
            ),
            r.clone(),
            v.id.clone(),
        ));
    }
    Ok(())
}
