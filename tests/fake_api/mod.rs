//! A fake Kubernetes API server over real HTTP, for the binary's Kubernetes mode.
//!
//! It holds one StatefulSet and its pods in one namespace and answers the calls the binary makes,
//! with the JSON of the real API (objects built as k8s-openapi types, see [`objects`]):
//!
//! - `GET /apis/apps/v1/namespaces/{ns}/statefulsets/{name}`: get, or a 404 `Status`;
//! - `GET /apis/apps/v1/namespaces/{ns}/statefulsets?fieldSelector=metadata.name%3D{name}`: list,
//!   with the list's `resourceVersion`;
//! - the same with `watch=true&resourceVersion=N`: a chunked stream of one JSON event per line
//!   (`ADDED`/`MODIFIED` after N, a `BOOKMARK` when asked for), open until `timeoutSeconds`;
//! - `GET /api/v1/namespaces/{ns}/pods?labelSelector=...`: list;
//! - `GET /api/v1/nodes/{name}`: get a Kubernetes node, with its zone label ([`nodes`]: where each
//!   pod runs is set with [`FakeApi::place`]).
//! - `coordination.k8s.io/v1` leases: get, create (409 AlreadyExists) and update (replace), which
//!   like the real API answers 409 Conflict when the body's `metadata.resourceVersion` is not the
//!   stored one, and gives every write a new resourceVersion ([`coordination`]);
//! - `events.k8s.io/v1` events: create, validated like the real API (required fields, a note of at
//!   most 1 kB), and stored for the tests to read.
//!
//! A test moves the StatefulSet through [`Stage`]s on a script (each change is a new
//! resourceVersion and a watch event), and can switch on faults: a 403 on one verb, errors such as
//! 503 for the next requests, or a server that starts listening late. Like the real API with RBAC,
//! it can also answer 403 to every call that given Role rules do not grant
//! ([`FakeApi::grant_only`]). Every request is recorded.
//!
//! It listens on `127.0.<block>.1:6443`; [`FakeApi::kubeconfig`] writes the kubeconfig that points
//! the binary at it (plain http, a bearer token).

#![allow(dead_code)]

mod coordination;
mod nodes;
mod objects;

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use k8s_openapi::List;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, WatchEvent};
use serde::Serialize;
use tokio::runtime::Runtime;

#[allow(unused_imports)] // each test binary uses what it needs
pub use objects::{PodState, Stage};

/// The token in the kubeconfig; the server records whether requests carry it.
pub const TOKEN: &str = "fake-service-account-token";

/// One request the server answered.
#[derive(Debug, Clone)]
pub struct Request {
    /// `get`, `list`, `watch`, `create` or `update` (`unknown` for paths the fake does not serve).
    pub verb: &'static str,
    /// `statefulsets`, `pods`, `nodes`, `leases` or `events`.
    pub resource: &'static str,
    /// The HTTP status of the answer.
    pub code: u16,
    /// Whether it carried `Authorization: Bearer <TOKEN>`.
    pub authorized: bool,
    /// Its `User-Agent` header, if any.
    pub user_agent: Option<String>,
    /// The path and query, for failure messages.
    pub uri: String,
}

/// The fake API server; it stops when dropped.
pub struct FakeApi {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Runtime,
    dir: tempfile::TempDir,
}

/// What the connection tasks share.
struct Shared {
    namespace: String,
    name: String,
    /// The /24 it serves on and its pods' IPs are in: `127.0.<block>`, or another.
    network: String,
    state: Mutex<State>,
    /// The latest resourceVersion; open watches wake up when it changes.
    changes: tokio::sync::watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    resource_version: u64,
    statefulset: Option<StatefulSet>,
    pods: Vec<Pod>,
    /// Every change of the StatefulSet as a watch event line, with its resourceVersion.
    events: Vec<(u64, String)>,
    /// `(verb, resource)` pairs answered with 403.
    forbidden: Vec<(String, String)>,
    /// When set, the only `(verb, resource)` pairs answered without a 403, as RBAC grants.
    granted: Option<Vec<(String, String)>>,
    /// The statuses of the next requests, an error each (503, 429...), before normal service.
    failing: VecDeque<u16>,
    requests: Vec<Request>,
    /// The Kubernetes nodes and which one each pod runs on.
    nodes: nodes::Nodes,
    /// Leases by name, as stored.
    leases: std::collections::BTreeMap<String, k8s_openapi::api::coordination::v1::Lease>,
    /// Every Lease as written, in order: (holder, resourceVersion).
    lease_writes: Vec<(Option<String>, String)>,
    /// Events, in the order they were created.
    recorded: Vec<k8s_openapi::api::events::v1::Event>,
}

impl FakeApi {
    /// Serves namespace `namespace` (empty: no StatefulSet yet) at `127.0.<block>.1:6443`.
    pub fn start(block: u8, namespace: &str) -> FakeApi {
        FakeApi::start_after(block, namespace, Duration::ZERO)
    }

    /// Like [`FakeApi::start`], but connections are refused for the first `delay`.
    pub fn start_after(block: u8, namespace: &str, delay: Duration) -> FakeApi {
        FakeApi::start_in(&format!("127.0.{block}"), namespace, delay)
    }

    /// Like [`FakeApi::start_after`], in the /24 `network` (`127.33.3`: at `127.33.3.1:6443`,
    /// pod i's IP `127.33.3.<11 + i>`).
    pub fn start_in(network: &str, namespace: &str, delay: Duration) -> FakeApi {
        let addr: SocketAddr = format!("{network}.1:6443").parse().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let shared = Arc::new(Shared {
            namespace: namespace.into(),
            name: "redis-app".into(),
            network: network.into(),
            state: Mutex::default(),
            changes: tokio::sync::watch::Sender::new(0),
        });
        let server = shared.clone();
        let bind = move || async move {
            tokio::time::sleep(delay).await;
            tokio::net::TcpListener::bind(addr)
                .await
                .expect("bind the fake API server")
        };
        if delay.is_zero() {
            let listener = runtime.block_on(bind());
            runtime.spawn(serve(listener, server));
        } else {
            runtime.spawn(async move { serve(bind().await, server).await });
        }
        FakeApi {
            addr,
            shared,
            runtime,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Writes a kubeconfig whose current context points at this server with `namespace`, and
    /// returns its path for `KUBECONFIG`.
    pub fn kubeconfig(&self, namespace: &str) -> String {
        let path: PathBuf = self.dir.path().join(format!("kubeconfig-{namespace}"));
        let text = format!(
            "apiVersion: v1\nkind: Config\n\
             clusters:\n- name: fake\n  cluster:\n    server: http://{addr}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    namespace: {namespace}\n    user: bootstrap\n\
             current-context: fake\n\
             users:\n- name: bootstrap\n  user:\n    token: {TOKEN}\n",
            addr = self.addr
        );
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    /// Moves the StatefulSet (creating it if needed) and its pods to `stage`, now.
    pub fn show(&self, stage: &Stage) {
        self.shared.apply(stage);
    }

    /// Shows each stage at its time from now; stages at zero are shown before this returns.
    pub fn script(&self, steps: Vec<(Duration, Stage)>) {
        let start = tokio::time::Instant::now();
        let (now, later): (Vec<_>, Vec<_>) = steps.into_iter().partition(|(at, _)| at.is_zero());
        for (_, stage) in &now {
            self.show(stage);
        }
        let shared = self.shared.clone();
        self.runtime.spawn(async move {
            for (at, stage) in later {
                tokio::time::sleep_until(start + at).await;
                shared.apply(&stage);
            }
        });
    }

    /// Answers `verb` on `resource` with 403 from now on, as RBAC does without a grant.
    pub fn forbid(&self, verb: &str, resource: &str) {
        self.shared
            .state
            .lock()
            .unwrap()
            .forbidden
            .push((verb.into(), resource.into()));
    }

    /// Answers 403 to every `(verb, resource)` not in `granted`, from now on, as the API server does
    /// for a ServiceAccount whose Roles grant only those (resource names are not checked).
    pub fn grant_only(&self, granted: &[(String, String)]) {
        self.shared.state.lock().unwrap().granted = Some(granted.to_vec());
    }

    /// Answers the next `count` requests (after those already set to fail) with `code`: 503,
    /// 429 or 500.
    pub fn fail_next(&self, code: u16, count: usize) {
        let mut state = self.shared.state.lock().unwrap();
        state.failing.extend(std::iter::repeat_n(code, count));
    }

    /// The requests answered so far.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.state.lock().unwrap().requests.clone()
    }

    /// Stores the Lease `name` held by `holder`, renewed now, as another run would have written it.
    pub fn hold_lease(&self, name: &str, holder: &str) {
        self.shared.seed_lease(name, holder);
    }

    /// Releases the Lease `name` as its holder would at the end of its run.
    pub fn release_lease(&self, name: &str) {
        self.shared.release_seeded_lease(name);
    }

    /// The Lease `name` as stored now.
    pub fn lease(&self, name: &str) -> Option<k8s_openapi::api::coordination::v1::Lease> {
        self.shared.state.lock().unwrap().leases.get(name).cloned()
    }

    /// The holder of every successful write of a Lease, in order (`None`: released).
    pub fn lease_holders(&self) -> Vec<Option<String>> {
        let state = self.shared.state.lock().unwrap();
        state.lease_writes.iter().map(|(h, _)| h.clone()).collect()
    }

    /// The Events created so far, in order.
    pub fn events(&self) -> Vec<k8s_openapi::api::events::v1::Event> {
        self.shared.state.lock().unwrap().recorded.clone()
    }
}

type Body = BoxBody<Bytes, Infallible>;

/// Accepts connections and answers each one's requests.
async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(shared.answer(request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The calls the fake serves.
enum Route {
    Get(String, String),
    List(String),
    Watch(String),
    ListPods(String),
    GetNode(String),
    GetLease(String, String),
    CreateLease(String),
    ReplaceLease(String, String),
    CreateEvent(String),
    Unknown,
}

impl Route {
    fn parse(method: &hyper::Method, path: &str, query: &HashMap<String, String>) -> Route {
        let watch = query.get("watch").is_some_and(|w| w == "true" || w == "1");
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let method = method.as_str();
        match (method, segments.as_slice()) {
            (
                "GET",
                [
                    "apis",
                    "coordination.k8s.io",
                    "v1",
                    "namespaces",
                    ns,
                    "leases",
                    name,
                ],
            ) => {
                return Route::GetLease(ns.to_string(), name.to_string());
            }
            (
                "POST",
                [
                    "apis",
                    "coordination.k8s.io",
                    "v1",
                    "namespaces",
                    ns,
                    "leases",
                ],
            ) => {
                return Route::CreateLease(ns.to_string());
            }
            (
                "PUT",
                [
                    "apis",
                    "coordination.k8s.io",
                    "v1",
                    "namespaces",
                    ns,
                    "leases",
                    name,
                ],
            ) => {
                return Route::ReplaceLease(ns.to_string(), name.to_string());
            }
            ("POST", ["apis", "events.k8s.io", "v1", "namespaces", ns, "events"]) => {
                return Route::CreateEvent(ns.to_string());
            }
            ("GET", _) => {}
            _ => return Route::Unknown,
        }
        match segments.as_slice() {
            ["apis", "apps", "v1", "namespaces", ns, "statefulsets"] if watch => {
                Route::Watch(ns.to_string())
            }
            ["apis", "apps", "v1", "namespaces", ns, "statefulsets"] => Route::List(ns.to_string()),
            ["apis", "apps", "v1", "namespaces", ns, "statefulsets", name] if !watch => {
                Route::Get(ns.to_string(), name.to_string())
            }
            ["api", "v1", "namespaces", ns, "pods"] if !watch => Route::ListPods(ns.to_string()),
            ["api", "v1", "nodes", name] if !watch => Route::GetNode(name.to_string()),
            _ => Route::Unknown,
        }
    }

    fn verb_and_resource(&self) -> (&'static str, &'static str) {
        match self {
            Route::Get(..) => ("get", "statefulsets"),
            Route::List(_) => ("list", "statefulsets"),
            Route::Watch(_) => ("watch", "statefulsets"),
            Route::ListPods(_) => ("list", "pods"),
            Route::GetNode(_) => ("get", "nodes"),
            Route::GetLease(..) => ("get", "leases"),
            Route::CreateLease(_) => ("create", "leases"),
            Route::ReplaceLease(..) => ("update", "leases"),
            Route::CreateEvent(_) => ("create", "events"),
            Route::Unknown => ("unknown", ""),
        }
    }
}

impl Shared {
    /// Moves the StatefulSet and its pods to `stage`: a new resourceVersion and a watch event.
    fn apply(&self, stage: &Stage) {
        let mut state = self.state.lock().unwrap();
        state.resource_version += 1;
        let rv = state.resource_version;
        let sts = objects::statefulset(&self.namespace, &self.name, stage, rv);
        let event = if state.statefulset.is_some() {
            WatchEvent::Modified(sts.clone())
        } else {
            WatchEvent::Added(sts.clone())
        };
        state
            .events
            .push((rv, serde_json::to_string(&event).unwrap()));
        state.statefulset = Some(sts);
        state.pods = stage
            .pods
            .iter()
            .enumerate()
            .map(|(i, pod)| {
                let ip = format!("{}.{}", self.network, 11 + i);
                objects::pod(&self.namespace, &self.name, i, &ip, *pod, rv)
            })
            .collect();
        Shared::keep_placement(&mut state);
        drop(state);
        self.changes.send_replace(rv);
    }

    /// Answers one request, recording it.
    async fn answer(self: &Arc<Self>, request: hyper::Request<Incoming>) -> Response<Body> {
        let uri = request.uri().to_string();
        let query = parse_query(request.uri().query().unwrap_or(""));
        let route = Route::parse(request.method(), request.uri().path(), &query);
        let (verb, resource) = route.verb_and_resource();
        let authorized = request
            .headers()
            .get(AUTHORIZATION)
            .is_some_and(|v| v.as_bytes() == format!("Bearer {TOKEN}").as_bytes());
        let user_agent = request
            .headers()
            .get(hyper::header::USER_AGENT)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let body = match request.into_body().collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => Bytes::new(),
        };

        let response = self.fault(&route).unwrap_or_else(|| match route {
            Route::Get(ns, name) => self.get(&ns, &name),
            Route::List(ns) => self.list(&ns, &query),
            Route::Watch(ns) => self.watch(&ns, &query),
            Route::ListPods(ns) => self.list_pods(&ns, &query),
            Route::GetNode(name) => self.get_node(&name),
            Route::GetLease(ns, name) => self.get_lease(&ns, &name),
            Route::CreateLease(ns) => self.create_lease(&ns, &body),
            Route::ReplaceLease(ns, name) => self.replace_lease(&ns, &name, &body),
            Route::CreateEvent(ns) => self.create_event(&ns, &body),
            Route::Unknown => error(
                404,
                "NotFound",
                "the server could not find the requested resource".into(),
                None,
            ),
        });
        self.state.lock().unwrap().requests.push(Request {
            verb,
            resource,
            code: response.status().as_u16(),
            authorized,
            user_agent,
            uri,
        });
        response
    }

    /// The error a switched-on fault gives this request, if any.
    fn fault(&self, route: &Route) -> Option<Response<Body>> {
        let mut state = self.state.lock().unwrap();
        if let Some(code) = state.failing.pop_front() {
            let (reason, message) = match code {
                429 => (
                    "TooManyRequests",
                    "Too many requests, please try again later.",
                ),
                503 => (
                    "ServiceUnavailable",
                    "the server is currently unable to handle the request",
                ),
                _ => (
                    "InternalError",
                    "an error on the server (\"etcdserver: request timed out\") has prevented the request from succeeding",
                ),
            };
            let mut response = error(code, reason, message.into(), None);
            if code == 429 {
                response.headers_mut().insert(RETRY_AFTER, 1.into());
            }
            return Some(response);
        }
        let (verb, resource) = route.verb_and_resource();
        let is = |(v, r): &(String, String)| v == verb && r == resource;
        let denied = state.forbidden.iter().any(is)
            || state
                .granted
                .as_ref()
                .is_some_and(|granted| !granted.iter().any(is));
        if !denied || matches!(route, Route::Unknown) {
            return None;
        }
        // The API server's wording, naming the ServiceAccount, verb, resource and namespace.
        let (group, qualified) = match resource {
            "pods" | "nodes" => ("", resource),
            "leases" => ("coordination.k8s.io", "leases.coordination.k8s.io"),
            "events" => ("events.k8s.io", "events.events.k8s.io"),
            _ => ("apps", "statefulsets.apps"),
        };
        let name = match route {
            Route::Get(_, name)
            | Route::GetNode(name)
            | Route::GetLease(_, name)
            | Route::ReplaceLease(_, name) => name.as_str(),
            _ => "",
        };
        // Nodes are cluster-scoped: the message says so instead of naming a namespace.
        let scope = if resource == "nodes" {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace \"{}\"", self.namespace)
        };
        let subject = if name.is_empty() {
            qualified.to_string()
        } else {
            format!("{qualified} {name:?}")
        };
        let message = format!(
            "{subject} is forbidden: User \"system:serviceaccount:{ns}:redis-cluster-bootstrap\" cannot {verb} \
             resource \"{resource}\" in API group \"{group}\" {scope}",
            ns = self.namespace
        );
        Some(error(
            403,
            "Forbidden",
            message,
            Some((name, group, resource)),
        ))
    }

    fn get(&self, namespace: &str, name: &str) -> Response<Body> {
        let state = self.state.lock().unwrap();
        match state
            .statefulset
            .as_ref()
            .filter(|_| namespace == self.namespace && name == self.name)
        {
            Some(sts) => json(200, sts),
            None => error(
                404,
                "NotFound",
                format!("statefulsets.apps {name:?} not found"),
                Some((name, "apps", "statefulsets")),
            ),
        }
    }

    fn list(&self, namespace: &str, query: &HashMap<String, String>) -> Response<Body> {
        let state = self.state.lock().unwrap();
        let items = state
            .statefulset
            .iter()
            .filter(|_| namespace == self.namespace && self.selects(query))
            .cloned()
            .collect();
        json(
            200,
            &List::<StatefulSet> {
                items,
                metadata: list_meta(state.resource_version),
            },
        )
    }

    fn list_pods(&self, namespace: &str, query: &HashMap<String, String>) -> Response<Body> {
        let state = self.state.lock().unwrap();
        let wanted: Vec<(&str, &str)> = query
            .get("labelSelector")
            .map(|s| s.split(',').filter_map(|kv| kv.split_once('=')).collect())
            .unwrap_or_default();
        let items = state
            .pods
            .iter()
            .filter(|_| namespace == self.namespace)
            .filter(|pod| {
                let labels = pod.metadata.labels.clone().unwrap_or_default();
                wanted
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
            })
            .cloned()
            .collect();
        json(
            200,
            &List::<Pod> {
                items,
                metadata: list_meta(state.resource_version),
            },
        )
    }

    /// Whether the request's `fieldSelector` (only `metadata.name=` is supported) selects the StatefulSet.
    fn selects(&self, query: &HashMap<String, String>) -> bool {
        match query.get("fieldSelector") {
            None => true,
            Some(selector) => selector == &format!("metadata.name={}", self.name),
        }
    }

    /// A chunked stream of the StatefulSet's events after the requested resourceVersion.
    fn watch(self: &Arc<Self>, namespace: &str, query: &HashMap<String, String>) -> Response<Body> {
        let mut sent: u64 = query
            .get("resourceVersion")
            .and_then(|rv| rv.parse().ok())
            .unwrap_or(0);
        let bookmarks = query
            .get("allowWatchBookmarks")
            .is_some_and(|b| b == "true");
        let timeout = Duration::from_secs(
            query
                .get("timeoutSeconds")
                .and_then(|t| t.parse().ok())
                .unwrap_or(1800),
        );
        let relevant = namespace == self.namespace && self.selects(query);
        let (mut lines, body) = futures::channel::mpsc::channel::<Bytes>(16);
        let shared = self.clone();
        tokio::spawn(async move {
            let mut changes = shared.changes.subscribe();
            let end = tokio::time::sleep(timeout);
            tokio::pin!(end);
            let mut first = true;
            loop {
                changes.borrow_and_update();
                let (events, now) = {
                    let state = shared.state.lock().unwrap();
                    let events: Vec<String> = state
                        .events
                        .iter()
                        .filter(|(rv, _)| relevant && *rv > sent)
                        .map(|(_, line)| line.clone())
                        .collect();
                    (events, state.resource_version)
                };
                for line in events {
                    if lines.send(Bytes::from(line + "\n")).await.is_err() {
                        return;
                    }
                }
                sent = sent.max(now);
                if first && bookmarks {
                    let bookmark = serde_json::json!({
                        "type": "BOOKMARK",
                        "object": {"kind": "StatefulSet", "apiVersion": "apps/v1",
                                   "metadata": {"resourceVersion": sent.to_string()}},
                    });
                    if lines
                        .send(Bytes::from(bookmark.to_string() + "\n"))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                first = false;
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return },
                    _ = &mut end => return,
                }
            }
        });
        let stream = StreamBody::new(body.map(|line| Ok::<_, Infallible>(Frame::data(line))));
        Response::builder()
            .status(200)
            .header(CONTENT_TYPE, "application/json")
            .body(BodyExt::boxed(stream))
            .unwrap()
    }
}

fn list_meta(resource_version: u64) -> ListMeta {
    ListMeta {
        resource_version: Some(resource_version.to_string()),
        ..Default::default()
    }
}

fn json(code: u16, body: &impl Serialize) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(body).unwrap())).boxed())
        .unwrap()
}

/// A `Status` answer, as every API error is.
fn error(
    code: u16,
    reason: &str,
    message: String,
    details: Option<(&str, &str, &str)>,
) -> Response<Body> {
    json(code, &objects::status(code, reason, message, details))
}

/// The query string as a map, percent-decoded.
fn parse_query(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
