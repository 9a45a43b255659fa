//! The relevance study's routes: with a rater file only token holders rate, under the name the
//! token maps to; without one any rater id is taken (the study page's own flow).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};
use unisight_experiment::study::StudyQuery;
use unisight_experiment::{add_rater, RaterTokens, RatingsFile};
use unisight_serve::study::Study;
use unisight_serve::{router, ServiceConfig};

use super::{assert_error, picture, png, send, service_state};

/// A service with a two-query study of its one arm against itself, `raters` (names) issued
/// tokens when given; the tokens come back in the same order.
fn study_service(raters: &[&str]) -> (axum::Router, tempfile::TempDir, Vec<String>) {
    let (state, dir, _) = service_state(4, false, ServiceConfig::default());
    let queries: Vec<StudyQuery> = (0..2)
        .map(|i| {
            let path = format!("q{i}.png");
            let file = dir.path().join(&path);
            std::fs::write(&file, png(&picture(i))).unwrap();
            StudyQuery {
                path,
                file,
                task: "fine".into(),
            }
        })
        .collect();
    let (ratings, _) = RatingsFile::open(&dir.path().join("ratings.jsonl")).unwrap();
    let raters_file = dir.path().join("raters.txt");
    let tokens: Vec<String> = raters
        .iter()
        .map(|name| add_rater(&raters_file, name).unwrap())
        .collect();
    let tokens_read = (!raters.is_empty()).then(|| RaterTokens::read(&raters_file).unwrap());
    let study = Study::new(
        "salt".into(),
        ["default".into(), "default".into()],
        queries,
        2,
        ratings,
        tokens_read,
    );
    let app = router(Arc::new(state.with_study(study)));
    (app, dir, tokens)
}

fn rating(body: Value, token: Option<&str>) -> Request<Body> {
    let mut request =
        Request::post("/v1/study/ratings").header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    request.body(Body::from(body.to_string())).unwrap()
}

fn next(query: &str, token: Option<&str>) -> Request<Body> {
    let mut request = Request::get(format!("/v1/study/next{query}"));
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    request.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn with_rater_tokens_only_their_holders_rate_under_their_own_names() {
    let (app, dir, tokens) = study_service(&["ana", "bo"]);
    let choice = json!({"trial": 0, "choice": "left"});
    // no token, an unknown one, and a made-up rater id are all refused
    for (request, status, code) in [
        (
            rating(choice.clone(), None),
            StatusCode::UNAUTHORIZED,
            "rater_token",
        ),
        (
            rating(choice.clone(), Some("guess")),
            StatusCode::UNAUTHORIZED,
            "rater_token",
        ),
        (
            rating(
                json!({"rater": "mallory", "trial": 0, "choice": "left"}),
                None,
            ),
            StatusCode::UNAUTHORIZED,
            "rater_token",
        ),
        (
            rating(
                json!({"rater": "bo", "trial": 0, "choice": "left"}),
                Some(&tokens[0]),
            ),
            StatusCode::FORBIDDEN,
            "rater_mismatch",
        ),
        (
            next("?rater=ana", None),
            StatusCode::UNAUTHORIZED,
            "rater_token",
        ),
    ] {
        let (got, _, json, _) = send(&app, request).await;
        assert_eq!(got, status, "{json}");
        assert_error(&json, code);
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ratings.jsonl")).unwrap(),
        ""
    );
    // a token holder sees trials and rates once
    let (status, _, json, _) = send(&app, next("", Some(&tokens[0]))).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["remaining"], 2, "{json}");
    let (status, _, json, _) = send(&app, rating(choice.clone(), Some(&tokens[0]))).await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    let (status, _, _, _) = send(&app, rating(choice.clone(), Some(&tokens[0]))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    // the other rater's rating of the same query is their own
    let (status, _, json, _) = send(&app, rating(choice, Some(&tokens[1]))).await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    let stored = std::fs::read_to_string(dir.path().join("ratings.jsonl")).unwrap();
    let raters: std::collections::HashSet<String> = stored
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["rater"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(raters.len(), 2, "{stored}");
    assert!(!stored.contains(&tokens[0]) && !stored.contains("\"ana\""));
}

#[tokio::test]
async fn without_rater_tokens_the_rater_id_is_required_and_taken() {
    let (app, _dir, _) = study_service(&[]);
    let (status, _, json, _) = send(&app, rating(json!({"trial": 0, "choice": "tie"}), None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_error(&json, "bad_rater");
    let (status, _, json, _) = send(
        &app,
        rating(json!({"rater": "r1", "trial": 0, "choice": "tie"}), None),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    let (status, _, json, _) = send(&app, next("?rater=r1", None)).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["remaining"], 1, "{json}");
}
