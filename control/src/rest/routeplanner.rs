//! `/v4/routeplanner/*`. Quaver has no IP-rotating route planner, so these answer as
//! Lavalink does while none is configured.

use axum::http::StatusCode;

use super::error::ApiError;

fn disabled() -> ApiError {
    ApiError::internal("Can't access disabled route planner")
}

pub(super) async fn status() -> StatusCode {
    StatusCode::NO_CONTENT
}

pub(super) async fn free_address() -> Result<StatusCode, ApiError> {
    Err(disabled())
}

pub(super) async fn free_all() -> Result<StatusCode, ApiError> {
    Err(disabled())
}
