//! Named collections and aliases over Qdrant Edge. An `EdgeShard` is one collection's
//! worth of segments and write-ahead log; this layer keeps several of them under one
//! locked data directory, with aliases, the way a Qdrant server does:
//!
//! ```text
//! <data_dir>/.lock                  exclusive lock, owner's pid
//! <data_dir>/aliases.json           {"alias": "collection", ...}
//! <data_dir>/collections/<name>/    one EdgeShard (edge_config.json, wal/, segments/)
//! ```
//!
//! Every call here blocks (disk, index builds): run it on `spawn_blocking` or a
//! dedicated thread. The embedded backend ([`crate::EmbeddedStore`]) and the test-only
//! Qdrant gRPC server both sit on this layer.
//!
//! # Durability
//!
//! qdrant-edge 0.7 appends every update to its WAL but does not replay the WAL when a
//! shard is loaded, so an update is only safe once the segments are flushed. Every
//! write here therefore runs `update` then `flush` before it returns: an acknowledged
//! write survives the process being killed.
//!
//! # When the HNSW index is built
//!
//! Edge builds HNSW only in `optimize()`; until then new points sit in a plain
//! (exhaustively searched) segment. A collection schedules `optimize()` on a background
//! thread once `optimize_after_points` points were written since the last run (default
//! 20 000 ≈ Qdrant's 10 MB indexing threshold at 128 dimensions), and once when it is
//! opened with that many unindexed points. Writes wait while it runs (edge's `flush`
//! must not overlap an optimization); searches do not.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use qdrant_edge::{
    CreateIndex, Distance, EdgeConfig, EdgeShard, EdgeVectorParams, FieldIndexOperations, JsonPath,
    OperationError, PayloadFieldSchema, PayloadSchemaType, PointInsertOperations, PointOperations,
    UpdateOperation, DEFAULT_VECTOR_NAME,
};

use super::lock::DirLock;
use crate::contract::validate_name;
use crate::error::StoreError;
use crate::payload::INDEXED_FIELDS;

const COLLECTIONS_DIR: &str = "collections";
const ALIASES_FILE: &str = "aliases.json";

/// How long deleting a collection waits for in-flight calls (and a running index
/// build) to let go of it.
const DELETE_WAIT: Duration = Duration::from_secs(600);

/// Collections and aliases in one locked data directory.
#[derive(Debug, Clone)]
pub struct EdgeRegistry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    lock: Arc<DirLock>,
    collections: RwLock<HashMap<String, Arc<EdgeCollection>>>,
    aliases: Mutex<BTreeMap<String, String>>,
    /// Serializes creating and deleting collections and changing aliases.
    admin: Mutex<()>,
    optimize_after_points: u64,
    background: Arc<Background>,
}

/// Background index builds, joined on close.
#[derive(Debug, Default)]
struct Background {
    jobs: Mutex<Vec<JoinHandle<()>>>,
}

/// One collection: an edge shard and the gate its writers pass.
#[derive(Debug)]
pub struct EdgeCollection {
    name: String,
    dim: usize,
    distance: Distance,
    shard: EdgeShard,
    /// Held by every write (update + flush) and by `optimize`.
    write_gate: Mutex<()>,
    written_since_optimize: AtomicU64,
    optimizing: AtomicBool,
    optimize_after_points: u64,
    background: Arc<Background>,
    /// Keeps the directory locked while this collection is alive, even past the
    /// registry (a background index build may outlive it).
    _lock: Arc<DirLock>,
}

/// A change to the aliases; a batch of them applies atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AliasChange {
    /// Points `alias` at `collection` (replacing what it pointed at).
    Create { alias: String, collection: String },
    /// Removes `alias`; `NotFound` when there is none.
    Delete { alias: String },
    /// Renames an alias; `NotFound` when `old` does not exist.
    Rename { old: String, new: String },
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind, never a
    // half-updated invariant, so a poisoned lock is still usable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Maps an engine error: bad input becomes `InvalidArgument`, the rest `Internal`.
pub fn edge_error(context: &str, err: OperationError) -> StoreError {
    let message = format!("{context}: {err}");
    match err {
        OperationError::WrongVectorDimension { .. }
        | OperationError::VectorNameNotExists { .. }
        | OperationError::ValidationError { .. }
        | OperationError::WrongSparse
        | OperationError::WrongMulti
        | OperationError::TypeError { .. } => StoreError::InvalidArgument(message),
        OperationError::PointIdError { .. } => StoreError::NotFound(message),
        OperationError::Timeout { .. } | OperationError::Cancelled { .. } => {
            StoreError::Unavailable(message)
        }
        _ => StoreError::Internal(message),
    }
}

fn io_error(context: String, err: std::io::Error) -> StoreError {
    StoreError::Internal(format!("{context}: {err}"))
}

impl EdgeRegistry {
    /// Opens (or creates) the data directory, locks it, and loads its collections.
    /// `Locked` when another process holds it.
    pub fn open(root: &Path, optimize_after_points: u64) -> Result<Self, StoreError> {
        let lock = Arc::new(DirLock::acquire(root)?);
        let collections_dir = root.join(COLLECTIONS_DIR);
        std::fs::create_dir_all(&collections_dir)
            .map_err(|e| io_error(format!("cannot create {}", collections_dir.display()), e))?;
        let background = Arc::new(Background::default());

        let mut collections = HashMap::new();
        let entries = std::fs::read_dir(&collections_dir)
            .map_err(|e| io_error(format!("cannot list {}", collections_dir.display()), e))?;
        for entry in entries {
            let entry = entry
                .map_err(|e| io_error(format!("cannot list {}", collections_dir.display()), e))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if !path.is_dir() {
                continue;
            }
            if name.starts_with('.') {
                // An interrupted create: never acknowledged, safe to drop.
                tracing::warn!(path = %path.display(), "removing unfinished collection");
                let _ = std::fs::remove_dir_all(&path);
                continue;
            }
            let shard = EdgeShard::load(&path, None).map_err(|e| {
                edge_error(&format!("cannot load collection {}", path.display()), e)
            })?;
            let collection = Arc::new(EdgeCollection::new(
                name.clone(),
                shard,
                optimize_after_points,
                background.clone(),
                lock.clone(),
            )?);
            collection.ensure_payload_indexes()?;
            collection.maybe_optimize_in_background();
            collections.insert(name, collection);
        }

        let aliases = read_aliases(&root.join(ALIASES_FILE))?;
        tracing::info!(
            dir = %root.display(),
            collections = collections.len(),
            aliases = aliases.len(),
            lock = %lock.path().display(),
            "embedded store opened"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                root: root.to_owned(),
                lock,
                collections: RwLock::new(collections),
                aliases: Mutex::new(aliases),
                admin: Mutex::new(()),
                optimize_after_points,
                background,
            }),
        })
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Creates a collection of `dim`-sized vectors compared by `distance`, with keyword
    /// indexes on twin's filter fields. `Conflict` when the name is taken (by a
    /// collection or an alias).
    pub fn create_collection(
        &self,
        name: &str,
        dim: usize,
        distance: Distance,
    ) -> Result<Arc<EdgeCollection>, StoreError> {
        validate_name("collection", name)?;
        let _admin = lock(&self.inner.admin);
        if self.find(name).is_some() {
            return Err(StoreError::Conflict(format!(
                "collection {name} already exists"
            )));
        }
        if lock(&self.inner.aliases).contains_key(name) {
            return Err(StoreError::Conflict(format!(
                "{name} is an alias: a collection cannot have an alias's name"
            )));
        }
        let collections_dir = self.inner.root.join(COLLECTIONS_DIR);
        let final_dir = collections_dir.join(name);
        // Built under a hidden name and renamed into place, so a crash mid-way leaves
        // nothing that looks like a collection.
        let temp_dir = collections_dir.join(format!(".creating-{name}"));
        let _ = std::fs::remove_dir_all(&temp_dir);
        std::fs::create_dir_all(&temp_dir)
            .map_err(|e| io_error(format!("cannot create {}", temp_dir.display()), e))?;
        let config = EdgeConfig::builder()
            .vector(
                DEFAULT_VECTOR_NAME,
                EdgeVectorParams::builder(dim, distance).build(),
            )
            .build();
        let shard = EdgeShard::new(&temp_dir, config)
            .map_err(|e| edge_error(&format!("cannot create collection {name}"), e))?;
        drop(shard);
        std::fs::rename(&temp_dir, &final_dir)
            .map_err(|e| io_error(format!("cannot move collection {name} into place"), e))?;
        let shard = EdgeShard::load(&final_dir, None)
            .map_err(|e| edge_error(&format!("cannot load collection {name}"), e))?;
        let collection = Arc::new(EdgeCollection::new(
            name.to_owned(),
            shard,
            self.inner.optimize_after_points,
            self.inner.background.clone(),
            self.inner.lock.clone(),
        )?);
        collection.ensure_payload_indexes()?;
        self.inner
            .collections
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), collection.clone());
        tracing::info!(collection = name, dim, ?distance, "collection created");
        Ok(collection)
    }

    fn find(&self, name: &str) -> Option<Arc<EdgeCollection>> {
        self.inner
            .collections
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// The collection called `name_or_alias`, or the one that alias points at.
    pub fn collection(&self, name_or_alias: &str) -> Result<Arc<EdgeCollection>, StoreError> {
        let target = lock(&self.inner.aliases).get(name_or_alias).cloned();
        let name = target.as_deref().unwrap_or(name_or_alias);
        self.find(name).ok_or_else(|| {
            StoreError::NotFound(format!(
                "collection {name_or_alias} does not exist: create it first (ensure_collection)"
            ))
        })
    }

    /// Names of all collections, sorted.
    pub fn collection_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .inner
            .collections
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// Deletes a collection, its files and the aliases pointing at it; false when it
    /// did not exist. Waits for in-flight calls on it to finish.
    pub fn delete_collection(&self, name: &str) -> Result<bool, StoreError> {
        let _admin = lock(&self.inner.admin);
        let Some(mut collection) = self
            .inner
            .collections
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name)
        else {
            return Ok(false);
        };
        {
            let mut aliases = lock(&self.inner.aliases);
            let before = aliases.clone();
            aliases.retain(|_, target| target != name);
            if *aliases != before {
                write_aliases(&self.inner.root.join(ALIASES_FILE), &aliases)?;
            }
        }
        // The shard flushes when dropped, so its files must outlive it: wait until
        // this is the last handle before removing the directory.
        let started = Instant::now();
        loop {
            match Arc::try_unwrap(collection) {
                Ok(last) => {
                    drop(last);
                    break;
                }
                Err(shared) if started.elapsed() < DELETE_WAIT => {
                    collection = shared;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(_) => {
                    return Err(StoreError::Unavailable(format!(
                        "collection {name} is still in use after {DELETE_WAIT:?}; its files \
                         are removed when the store next opens"
                    )));
                }
            }
        }
        let dir = self.inner.root.join(COLLECTIONS_DIR).join(name);
        // Rename first so that a crash mid-removal cannot leave a half collection.
        let doomed = self
            .inner
            .root
            .join(COLLECTIONS_DIR)
            .join(format!(".deleting-{name}"));
        let _ = std::fs::remove_dir_all(&doomed);
        std::fs::rename(&dir, &doomed)
            .map_err(|e| io_error(format!("cannot remove {}", dir.display()), e))?;
        std::fs::remove_dir_all(&doomed)
            .map_err(|e| io_error(format!("cannot remove {}", doomed.display()), e))?;
        tracing::info!(collection = name, "collection deleted");
        Ok(true)
    }

    /// Every alias and its collection, sorted by alias.
    pub fn aliases(&self) -> Vec<(String, String)> {
        lock(&self.inner.aliases)
            .iter()
            .map(|(a, c)| (a.clone(), c.clone()))
            .collect()
    }

    /// Applies alias changes all together or not at all, then persists them.
    pub fn change_aliases(&self, changes: &[AliasChange]) -> Result<(), StoreError> {
        let _admin = lock(&self.inner.admin);
        let mut aliases = lock(&self.inner.aliases);
        let mut next = aliases.clone();
        for change in changes {
            match change {
                AliasChange::Create { alias, collection } => {
                    validate_name("alias", alias)?;
                    if self.find(alias).is_some() {
                        return Err(StoreError::Conflict(format!(
                            "{alias} is a collection: an alias cannot have a collection's name"
                        )));
                    }
                    if self.find(collection).is_none() {
                        return Err(StoreError::NotFound(format!(
                            "cannot point alias {alias} at {collection}: no such collection"
                        )));
                    }
                    next.insert(alias.clone(), collection.clone());
                }
                AliasChange::Delete { alias } => {
                    if next.remove(alias).is_none() {
                        return Err(StoreError::NotFound(format!(
                            "alias {alias} does not exist"
                        )));
                    }
                }
                AliasChange::Rename { old, new } => {
                    validate_name("alias", new)?;
                    let target = next.remove(old).ok_or_else(|| {
                        StoreError::NotFound(format!("alias {old} does not exist"))
                    })?;
                    next.insert(new.clone(), target);
                }
            }
        }
        write_aliases(&self.inner.root.join(ALIASES_FILE), &next)?;
        *aliases = next;
        Ok(())
    }

    /// Waits for background index builds, flushes and releases the directory.
    pub fn close(self) {
        let jobs: Vec<_> = lock(&self.inner.background.jobs).drain(..).collect();
        for job in jobs {
            let _ = job.join();
        }
        // Dropping the last handles flushes the shards and releases the lock.
    }
}

impl EdgeCollection {
    fn new(
        name: String,
        shard: EdgeShard,
        optimize_after_points: u64,
        background: Arc<Background>,
        lock: Arc<DirLock>,
    ) -> Result<Self, StoreError> {
        let (dim, distance) = {
            let config = shard.config();
            let params = config.vectors.get(DEFAULT_VECTOR_NAME).ok_or_else(|| {
                StoreError::Internal(format!(
                    "collection {name} has no default vector: it was not created by twin"
                ))
            })?;
            (params.size, params.distance)
        };
        let info = shard.info();
        let unindexed = info.points_count.saturating_sub(info.indexed_vectors_count) as u64;
        Ok(Self {
            name,
            dim,
            distance,
            shard,
            write_gate: Mutex::new(()),
            written_since_optimize: AtomicU64::new(unindexed),
            optimizing: AtomicBool::new(false),
            optimize_after_points,
            background,
            _lock: lock,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn distance(&self) -> Distance {
        self.distance
    }

    /// The shard, for reads (search, retrieve, scroll, count, info). Writes go
    /// through [`Self::write`] so that they are flushed before they are acknowledged.
    pub fn shard(&self) -> &EdgeShard {
        &self.shard
    }

    /// Applies an update and flushes it to disk; returns once it is durable.
    pub fn write(self: &Arc<Self>, operation: UpdateOperation) -> Result<(), StoreError> {
        self.write_with(|shard| shard.update(operation))
    }

    /// Runs `f` (reads and updates) as one write: no other write or index build
    /// interleaves, and everything is flushed before this returns.
    pub fn write_with<T>(
        self: &Arc<Self>,
        f: impl FnOnce(&EdgeShard) -> Result<T, OperationError>,
    ) -> Result<T, StoreError> {
        let _gate = lock(&self.write_gate);
        let result = f(&self.shard);
        // Flushed even after an error: whatever part was applied in memory is then
        // on disk too, as a reopen would find it.
        self.shard.flush();
        result.map_err(|e| edge_error(&format!("write to collection {}", self.name), e))
    }

    /// Upserts points (ids, vectors, payloads) as one durable write, and schedules an
    /// index build when enough was written.
    pub fn upsert(
        self: &Arc<Self>,
        points: Vec<qdrant_edge::PointStructPersisted>,
    ) -> Result<(), StoreError> {
        let count = points.len() as u64;
        self.write(UpdateOperation::PointOperation(
            PointOperations::UpsertPoints(PointInsertOperations::PointsList(points)),
        ))?;
        self.written_since_optimize
            .fetch_add(count, Ordering::Relaxed);
        self.maybe_optimize_in_background();
        Ok(())
    }

    /// Creates a keyword index on `field` (idempotent).
    pub fn create_keyword_index(self: &Arc<Self>, field: &str) -> Result<(), StoreError> {
        let field_name = JsonPath::try_from(field).map_err(|()| {
            StoreError::InvalidArgument(format!("{field:?} is not a payload field path"))
        })?;
        self.write(UpdateOperation::FieldIndexOperation(
            FieldIndexOperations::CreateIndex(CreateIndex {
                field_name,
                field_schema: Some(PayloadFieldSchema::FieldType(PayloadSchemaType::Keyword)),
            }),
        ))
    }

    /// Indexes twin's filter fields on every segment. Segments made by an optimization
    /// start without payload indexes in edge 0.7, so this runs after each one too.
    fn ensure_payload_indexes(self: &Arc<Self>) -> Result<(), StoreError> {
        for field in INDEXED_FIELDS {
            self.create_keyword_index(field)?;
        }
        Ok(())
    }

    /// Builds the HNSW index (and merges or vacuums segments) now, blocking; returns
    /// whether anything changed. Writes wait meanwhile; searches go on.
    pub fn optimize(self: &Arc<Self>) -> Result<bool, StoreError> {
        let started = Instant::now();
        let changed = {
            let _gate = lock(&self.write_gate);
            self.written_since_optimize.store(0, Ordering::Relaxed);
            let changed = self
                .shard
                .optimize()
                .map_err(|e| edge_error(&format!("optimize collection {}", self.name), e))?;
            self.shard.flush();
            changed
        };
        if changed {
            self.ensure_payload_indexes()?;
        }
        let info = self.shard.info();
        tracing::info!(
            collection = %self.name,
            changed,
            points = info.points_count,
            indexed = info.indexed_vectors_count,
            segments = info.segments_count,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "collection optimized"
        );
        Ok(changed)
    }

    /// Starts `optimize()` on a background thread when enough was written since the
    /// last run and none is running.
    fn maybe_optimize_in_background(self: &Arc<Self>) {
        if self.optimize_after_points == 0
            || self.written_since_optimize.load(Ordering::Relaxed) < self.optimize_after_points
            || self.optimizing.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let collection = self.clone();
        let spawned = std::thread::Builder::new()
            .name("twin-edge-optimize".to_owned())
            .spawn(move || {
                if let Err(err) = collection.optimize() {
                    tracing::error!(collection = %collection.name, error = %err, "background optimize failed");
                }
                collection.optimizing.store(false, Ordering::Release);
            });
        match spawned {
            Ok(handle) => {
                let mut jobs = lock(&self.background.jobs);
                jobs.retain(|job| !job.is_finished());
                jobs.push(handle);
            }
            Err(err) => {
                self.optimizing.store(false, Ordering::Release);
                tracing::error!(collection = %self.name, error = %err, "cannot start background optimize");
            }
        }
    }
}

fn read_aliases(path: &Path) -> Result<BTreeMap<String, String>, StoreError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            StoreError::Internal(format!(
                "{} is not a valid alias file ({e}): fix or remove it",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(io_error(format!("cannot read {}", path.display()), e)),
    }
}

/// Writes the alias file atomically (temp file, fsync, rename).
fn write_aliases(path: &Path, aliases: &BTreeMap<String, String>) -> Result<(), StoreError> {
    use std::io::Write;
    let temp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(aliases)
        .map_err(|e| StoreError::Internal(format!("cannot encode aliases: {e}")))?;
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        if let Some(parent) = path.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| io_error(format!("cannot write {}", path.display()), e))
}
