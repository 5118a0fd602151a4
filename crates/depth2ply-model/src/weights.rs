//! Loading Depth Pro checkpoints into Apple-named tensors, with a PyTorch-style strict key check.
//!
//! Accepted files (the format is detected from the first bytes, never from the extension):
//! - Apple's `depth_pro.pt`: a PyTorch zip archive holding a flat (Ordered)dict of fp16 tensors;
//! - Hugging Face `DepthProForDepthEstimation` safetensors (`apple/DepthPro-hf`), in either spelling of
//!   the attention keys (`attention.attention.{query,key,value}` + `attention.output.dense`, written by
//!   `save_pretrained`, or `attention.{q,k,v}_proj` + `attention.o_proj`, the in-memory transformers v5
//!   names); every name is mapped back to Apple's and `q`, `k`, `v` are concatenated into `qkv`;
//! - safetensors with Apple's names.
//!
//! Elements may be f16, bf16, f32 or f64; they are converted to the requested dtype (f16 → f32 is
//! exact). Tensors are read and converted in parallel on rayon's pool, each by a positional read of its
//! own bytes (an uncompressed zip entry, whose CRC-32 is checked, or a safetensors byte range), so
//! loading needs the final tensors plus one tensor in flight per thread, never a second copy of the
//! file.
//!
//! Strictness: [`LoadedWeights::build_strict`] hands the network a [`VarBuilder`] that records every
//! request; missing or mis-shaped tensors are served as zeros so that construction can finish, and then
//! one [`ModelError::StrictLoad`] lists every missing, mis-shaped and unused tensor.
//!
//! ```no_run
//! use candle_core::{DType, Device};
//! use depth2ply_model::weights::load_weights;
//!
//! # fn main() -> Result<(), depth2ply_model::error::ModelError> {
//! let weights = load_weights("depth_pro.pt".as_ref(), DType::F32, &Device::Cpu)?;
//! // `build` stands for the network constructor, e.g. `|vb| DepthProNetwork::load(&config, vb)`.
//! let build = |vb: candle_nn::VarBuilder<'static>| vb.get((4, 2), "head.4.weight");
//! let head_weight = weights.build_strict(build)?;
//! # let _ = head_weight;
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use candle_core::pickle::{Object, Stack};
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use half::{bf16, f16};
use rayon::prelude::*;

use crate::error::{truncated_list, MissingTensor, ModelError, ShapeMismatch, StrictReport, UnusedTensor};

/// Container format of a checkpoint file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointFormat {
    /// `torch.save` zip archive (`data.pkl` + one entry per storage).
    PytorchZip,
    /// safetensors (8-byte little-endian header length, JSON header, raw data).
    Safetensors,
}

/// Key naming convention found in a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyNaming {
    /// Apple `ml-depth-pro` names (`encoder.patch_encoder.blocks.0.attn.qkv.weight`, …).
    Apple,
    /// Hugging Face transformers names (`depth_pro.encoder.patch_encoder.model.encoder.layer.0…`).
    HuggingFace,
}

/// Where one Hugging Face DepthPro tensor goes in Apple's naming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HfKeyMapping {
    /// Renamed one to one.
    Renamed(String),
    /// One third of Apple's fused `attn.qkv` tensor: part 0 = query, 1 = key, 2 = value (rows of the
    /// fused tensor in that order).
    QkvPart {
        /// The Apple `…attn.qkv.weight` / `…attn.qkv.bias` key.
        apple: String,
        /// 0 = query, 1 = key, 2 = value.
        part: usize,
    },
    /// A tensor the Apple network does not have and never needs at inference
    /// (`embeddings.mask_token`, used only for masked-image pre-training).
    Ignored,
}

/// Tensors of a checkpoint, renamed to Apple's keys, converted to one dtype and placed on one device.
#[derive(Debug, Clone)]
pub struct LoadedWeights {
    tensors: HashMap<String, Tensor>,
    path: PathBuf,
    format: CheckpointFormat,
    naming: KeyNaming,
    dtype: DType,
    device: Device,
}

/// Reads a Depth Pro checkpoint (any supported format and naming) into Apple-named tensors of `dtype`
/// on `device`, checking that every value is finite.
///
/// Errors name the problem and the file: unknown format, legacy (non-zip) `.pt`, a state dict nested in
/// another dict, truncated or corrupt files, unsupported element types, NaN/inf values, files without
/// Depth Pro tensors, incomplete Hugging Face attention tensors.
pub fn load_weights(path: &Path, dtype: DType, device: &Device) -> Result<LoadedWeights, ModelError> {
    let format = detect_format(path)?;
    let raw = RawCheckpoint::open(path, format)?;
    let naming = detect_naming(raw.names.iter().map(|(n, _)| n.as_str()), path)?;
    let mapped: Vec<(HfKeyMapping, &String, &Loc)> = raw
        .names
        .iter()
        .map(|(name, loc)| {
            let mapping = match naming {
                KeyNaming::Apple => HfKeyMapping::Renamed(name.clone()),
                // Unknown Hugging Face keys keep their name so that the strict check reports them.
                KeyNaming::HuggingFace => {
                    hf_to_apple_key(name).unwrap_or_else(|| HfKeyMapping::Renamed(name.clone()))
                }
            };
            (mapping, name, loc)
        })
        .filter(|(mapping, _, _)| *mapping != HfKeyMapping::Ignored)
        .collect();
    let read: Vec<(HfKeyMapping, Tensor)> = mapped
        .into_par_iter()
        .map(|(mapping, name, loc)| Ok((mapping, raw.read(name, loc, dtype, device, path)?)))
        .collect::<Result<_, ModelError>>()?;
    let mut tensors = HashMap::with_capacity(read.len());
    let mut qkv: BTreeMap<String, [Option<Tensor>; 3]> = BTreeMap::new();
    for (mapping, tensor) in read {
        match mapping {
            HfKeyMapping::Renamed(apple) => {
                tensors.insert(apple, tensor);
            }
            HfKeyMapping::QkvPart { apple, part } => {
                let parts = qkv.entry(apple.clone()).or_default();
                if let Some(slot) = parts.get_mut(part) {
                    *slot = Some(tensor);
                }
                if parts.iter().all(Option::is_some) {
                    let ready: Vec<Tensor> = parts.iter_mut().filter_map(Option::take).collect();
                    tensors.insert(apple.clone(), Tensor::cat(&ready, 0)?);
                    qkv.remove(&apple);
                }
            }
            HfKeyMapping::Ignored => {}
        }
    }
    if !qkv.is_empty() {
        let names = truncated_list(qkv.iter().map(|(apple, parts)| {
            let missing: Vec<&str> = ["query", "key", "value"]
                .iter()
                .zip(parts.iter())
                .filter(|(_, p)| p.is_none())
                .map(|(n, _)| *n)
                .collect();
            format!("{apple} (no {})", missing.join("/"))
        }));
        return Err(ModelError::IncompleteQkv {
            names,
            path: path.to_path_buf(),
        });
    }
    Ok(LoadedWeights {
        tensors,
        path: path.to_path_buf(),
        format,
        naming,
        dtype,
        device: device.clone(),
    })
}

/// Reads every tensor of a checkpoint (PyTorch zip or safetensors) under its stored name, converted
/// to `dtype` on `device`: no renaming and no check that the file is Depth Pro. Same format detection,
/// view handling and NaN/inf checks as [`load_weights`].
pub fn read_tensors(path: &Path, dtype: DType, device: &Device) -> Result<Vec<(String, Tensor)>, ModelError> {
    let raw = RawCheckpoint::open(path, detect_format(path)?)?;
    raw.names
        .par_iter()
        .map(|(name, loc)| Ok((name.clone(), raw.read(name, loc, dtype, device, path)?)))
        .collect()
}

impl LoadedWeights {
    /// The file the weights came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Container format of the file.
    pub fn format(&self) -> CheckpointFormat {
        self.format
    }

    /// Key naming found in the file (the tensors themselves always carry Apple names).
    pub fn naming(&self) -> KeyNaming {
        self.naming
    }

    /// Element type of every tensor.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Device holding the tensors.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Number of tensors (Apple naming: 1119 for the official checkpoint).
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// `true` when there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Total number of scalar parameters (951,991,330 for the official checkpoint).
    pub fn parameter_count(&self) -> usize {
        self.tensors.values().map(Tensor::elem_count).sum()
    }

    /// Apple key names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.tensors.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// The tensor stored under an Apple key.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    /// All tensors, keyed by Apple name.
    pub fn into_tensors(self) -> HashMap<String, Tensor> {
        self.tensors
    }

    /// A [`VarBuilder`] serving these tensors (no data is copied) and the tracker that records what it
    /// was asked for. Missing or mis-shaped tensors are served as zeros of the requested shape so that a
    /// network can be built to the end; call [`StrictTracker::finish`] afterwards.
    pub fn strict_var_builder(&self) -> (VarBuilder<'static>, StrictTracker) {
        let state = Arc::new(Mutex::new(Requests::default()));
        let backend = StrictBackend {
            tensors: self.tensors.clone(),
            state: Arc::clone(&state),
        };
        let mut available: Vec<(String, Vec<usize>)> = self
            .tensors
            .iter()
            .map(|(k, t)| (k.clone(), t.dims().to_vec()))
            .collect();
        available.sort_unstable();
        let vb = VarBuilder::from_backend(Box::new(backend), self.dtype, self.device.clone());
        (
            vb,
            StrictTracker {
                state,
                available,
                path: self.path.clone(),
            },
        )
    }

    /// Builds a network with `build` from these weights and checks, like PyTorch's
    /// `load_state_dict(strict=True)`, that it used every tensor with the right shape and found every
    /// tensor it asked for.
    ///
    /// If `build` fails and tensors were missing or mis-shaped, the strict error is returned (it is the
    /// more useful one); unused tensors are only reported after a complete build.
    pub fn build_strict<T>(
        &self,
        build: impl FnOnce(VarBuilder<'static>) -> candle_core::Result<T>,
    ) -> Result<T, ModelError> {
        let (vb, tracker) = self.strict_var_builder();
        let built = build(vb);
        let mut report = tracker.report();
        match built {
            Ok(value) if report.is_clean() => Ok(value),
            Ok(_) => Err(ModelError::StrictLoad {
                report,
                path: self.path.clone(),
            }),
            Err(err) => {
                report.unused.clear();
                if report.is_clean() {
                    Err(ModelError::Candle(err))
                } else {
                    Err(ModelError::StrictLoad {
                        report,
                        path: self.path.clone(),
                    })
                }
            }
        }
    }
}

/// Records the requests made through a [`LoadedWeights::strict_var_builder`].
#[derive(Debug)]
pub struct StrictTracker {
    state: Arc<Mutex<Requests>>,
    available: Vec<(String, Vec<usize>)>,
    path: PathBuf,
}

impl StrictTracker {
    /// Missing, mis-shaped and unused tensors so far.
    pub fn report(&self) -> StrictReport {
        let state = lock(&self.state);
        let mut report = StrictReport::default();
        for (name, request) in &state.requests {
            match request {
                Request::Found => {}
                Request::Missing(expected) => report.missing.push(MissingTensor {
                    name: name.clone(),
                    expected: expected.clone(),
                }),
                Request::Mismatch { expected, found } => report.mismatched.push(ShapeMismatch {
                    name: name.clone(),
                    expected: expected.clone(),
                    found: found.clone(),
                }),
            }
        }
        report.unused = self
            .available
            .iter()
            .filter(|(name, _)| !state.requests.contains_key(name))
            .map(|(name, shape)| UnusedTensor {
                name: name.clone(),
                shape: shape.clone(),
            })
            .collect();
        report
    }

    /// Fails with [`ModelError::StrictLoad`] unless every requested tensor was found with the right
    /// shape and every tensor was requested.
    pub fn finish(self) -> Result<(), ModelError> {
        let report = self.report();
        if report.is_clean() {
            Ok(())
        } else {
            Err(ModelError::StrictLoad {
                report,
                path: self.path,
            })
        }
    }
}

#[derive(Debug, Default)]
struct Requests {
    requests: BTreeMap<String, Request>,
}

#[derive(Debug, Clone)]
enum Request {
    Found,
    Missing(Option<Vec<usize>>),
    Mismatch { expected: Vec<usize>, found: Vec<usize> },
}

fn lock(state: &Mutex<Requests>) -> MutexGuard<'_, Requests> {
    // A panic while holding the lock cannot leave the map inconsistent (single inserts).
    state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct StrictBackend {
    tensors: HashMap<String, Tensor>,
    state: Arc<Mutex<Requests>>,
}

impl StrictBackend {
    fn record(&self, name: &str, request: Request) {
        let mut state = lock(&self.state);
        // A tensor found once stays found; otherwise keep the first problem seen.
        match state.requests.get(name) {
            Some(Request::Found) | None => {
                state.requests.insert(name.to_string(), request);
            }
            Some(_) => {}
        }
    }
}

impl SimpleBackend for StrictBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        match self.tensors.get(name) {
            None => {
                self.record(name, Request::Missing(Some(s.dims().to_vec())));
                Tensor::zeros(s, dtype, dev)
            }
            Some(t) if t.shape() != &s => {
                self.record(
                    name,
                    Request::Mismatch {
                        expected: s.dims().to_vec(),
                        found: t.dims().to_vec(),
                    },
                );
                Tensor::zeros(s, dtype, dev)
            }
            Some(t) => {
                self.record(name, Request::Found);
                t.to_dtype(dtype)?.to_device(dev)
            }
        }
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        match self.tensors.get(name) {
            None => {
                self.record(name, Request::Missing(None));
                Err(candle_core::Error::CannotFindTensor {
                    path: name.to_string(),
                })
            }
            Some(t) => {
                self.record(name, Request::Found);
                t.to_dtype(dtype)?.to_device(dev)
            }
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

// ---------------------------------------------------------------------------------------------------
// Format detection

/// Identifies the container format from the first bytes of the file.
pub fn detect_format(path: &Path) -> Result<CheckpointFormat, ModelError> {
    let mut file = File::open(path).map_err(|e| ModelError::io("open the weights file", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| ModelError::io("read the weights file's size", path, e))?
        .len();
    let mut head = [0u8; 32];
    let n = read_up_to(&mut file, &mut head).map_err(|e| ModelError::io("read the weights file", path, e))?;
    let head = &head[..n];
    if head.starts_with(b"PK\x03\x04") {
        return Ok(CheckpointFormat::PytorchZip);
    }
    if head.starts_with(b"PK\x05\x06") {
        return Err(ModelError::corrupt("empty zip archive", path));
    }
    // safetensors before the one-byte checks below: its first byte is the low byte of the header
    // length and can be anything (0x80, '<', …); byte 8 opens the JSON header.
    if n >= 9 && head.get(8) == Some(&b'{') {
        let mut len_bytes = [0u8; 8];
        len_bytes.copy_from_slice(&head[..8]);
        let header_len = u64::from_le_bytes(len_bytes);
        if header_len.saturating_add(8) > len {
            return Err(ModelError::corrupt(
                format!("safetensors header of {header_len} bytes but the file has {len} bytes"),
                path,
            ));
        }
        return Ok(CheckpointFormat::Safetensors);
    }
    if head.first() == Some(&0x80) {
        // Pickle protocol opcode: a pre-1.6 `torch.save` (or a raw pickle).
        return Err(ModelError::LegacyPickle {
            path: path.to_path_buf(),
        });
    }
    if head.starts_with(b"version https://git-lfs") {
        return Err(unknown(
            path,
            "a Git LFS pointer, not the weights; run `git lfs pull` or download the file",
        ));
    }
    if head.first() == Some(&b'<') {
        return Err(unknown(path, "an HTML/XML page, probably a failed download"));
    }
    if len < 9 {
        return Err(ModelError::corrupt(
            format!("the file has only {len} bytes"),
            path,
        ));
    }
    let hex: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
    Err(unknown(path, &format!("first bytes {}", hex.join(" "))))
}

fn unknown(path: &Path, found: &str) -> ModelError {
    ModelError::UnknownFormat {
        found: found.to_string(),
        path: path.to_path_buf(),
    }
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            k => filled += k,
        }
    }
    Ok(filled)
}

fn detect_naming<'a>(
    names: impl Iterator<Item = &'a str> + Clone,
    path: &Path,
) -> Result<KeyNaming, ModelError> {
    const HF: [&str; 4] = ["depth_pro.", "fusion_stage.", "fov_model.", "head.layers."];
    const APPLE: [&str; 4] = ["encoder.", "decoder.", "head.", "fov."];
    if names.clone().any(|n| HF.iter().any(|p| n.starts_with(p))) {
        return Ok(KeyNaming::HuggingFace);
    }
    if names.clone().any(|n| APPLE.iter().any(|p| n.starts_with(p))) {
        return Ok(KeyNaming::Apple);
    }
    let mut sample: Vec<&str> = names.collect();
    sample.sort_unstable();
    let sample = if sample.is_empty() {
        "the file holds no tensors".to_string()
    } else {
        truncated_list(sample.into_iter().map(str::to_string))
    };
    Err(ModelError::NotDepthPro {
        sample,
        path: path.to_path_buf(),
    })
}

// ---------------------------------------------------------------------------------------------------
// Raw readers: list the tensors first, then read them one by one.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ElemType {
    F16,
    BF16,
    F32,
    F64,
}

impl ElemType {
    fn size(self) -> usize {
        match self {
            Self::F16 | Self::BF16 => 2,
            Self::F32 => 4,
            Self::F64 => 8,
        }
    }
}

/// Location of one tensor inside its file.
#[derive(Debug, Clone)]
enum Loc {
    Zip {
        entry: String,
        elem: ElemType,
        shape: Vec<usize>,
        stride: Vec<usize>,
        /// Offset of the first element, in elements.
        offset: usize,
    },
    Safetensors {
        elem: ElemType,
        shape: Vec<usize>,
        /// Absolute byte range in the file.
        start: u64,
        end: u64,
    },
}

/// An uncompressed zip entry (PyTorch stores every storage that way): where its bytes are.
#[derive(Debug, Clone, Copy)]
struct StoredEntry {
    start: u64,
    size: u64,
    crc32: u32,
}

struct RawCheckpoint {
    names: Vec<(String, Loc)>,
    /// Zip entries read through the zip crate (compressed ones; PyTorch never writes them).
    zip: Option<Mutex<zip::ZipArchive<BufReader<File>>>>,
    /// Uncompressed zip entries by name, read with positional reads of `file`.
    stored: HashMap<String, StoredEntry>,
    file: File,
}

impl RawCheckpoint {
    /// Reads the index (names, locations) of a checkpoint of the given format.
    fn open(path: &Path, format: CheckpointFormat) -> Result<Self, ModelError> {
        match format {
            CheckpointFormat::PytorchZip => read_pytorch_zip(path),
            CheckpointFormat::Safetensors => read_safetensors(path),
        }
    }

    /// Reads one tensor; safe to call from several threads at once.
    fn read(
        &self,
        name: &str,
        loc: &Loc,
        dtype: DType,
        device: &Device,
        path: &Path,
    ) -> Result<Tensor, ModelError> {
        match loc {
            Loc::Zip {
                entry,
                elem,
                shape,
                stride,
                offset,
            } => {
                let storage = match self.stored.get(entry) {
                    Some(stored) => self.read_stored(name, entry, *stored, path)?,
                    None => self.read_compressed(name, entry, path)?,
                };
                let storage_len = storage.len();
                let bytes = gather(storage, elem.size(), shape, stride, *offset).ok_or_else(|| {
                    ModelError::corrupt(
                        format!(
                            "tensor `{name}` {shape:?} (stride {stride:?}, offset {offset}) does not fit its \
                             storage of {storage_len} bytes"
                        ),
                        path,
                    )
                })?;
                decode(name, *elem, &bytes, shape, dtype, device, path)
            }
            Loc::Safetensors {
                elem,
                shape,
                start,
                end,
            } => {
                let len = usize::try_from(end - start)
                    .map_err(|_| ModelError::corrupt(format!("tensor `{name}` is too large"), path))?;
                let mut bytes = vec![0u8; len];
                read_exact_at(&self.file, &mut bytes, *start)
                    .map_err(|e| ModelError::corrupt(format!("reading tensor `{name}`: {e}"), path))?;
                decode(name, *elem, &bytes, shape, dtype, device, path)
            }
        }
    }

    /// The bytes of an uncompressed zip entry, checked against the CRC-32 of the central directory
    /// (what the zip crate would check when reading it).
    fn read_stored(
        &self,
        name: &str,
        entry: &str,
        stored: StoredEntry,
        path: &Path,
    ) -> Result<Vec<u8>, ModelError> {
        let len = usize::try_from(stored.size)
            .map_err(|_| ModelError::corrupt(format!("storage `{entry}` of `{name}` is too large"), path))?;
        let mut bytes = vec![0u8; len];
        read_exact_at(&self.file, &mut bytes, stored.start)
            .map_err(|e| ModelError::corrupt(format!("reading storage `{entry}` of `{name}`: {e}"), path))?;
        if crc32fast::hash(&bytes) != stored.crc32 {
            return Err(ModelError::corrupt(
                format!("storage `{entry}` of `{name}` fails its CRC-32 check (the file is damaged)"),
                path,
            ));
        }
        Ok(bytes)
    }

    /// The bytes of a compressed zip entry, through the zip crate (one at a time).
    fn read_compressed(&self, name: &str, entry: &str, path: &Path) -> Result<Vec<u8>, ModelError> {
        let Some(zip) = &self.zip else {
            return Err(ModelError::corrupt("internal: zip archive not open", path));
        };
        let mut zip = zip.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut file = zip
            .by_name(entry)
            .map_err(|e| ModelError::corrupt(format!("storage `{entry}` of `{name}`: {e}"), path))?;
        let mut storage = Vec::with_capacity(usize::try_from(file.size()).unwrap_or(0));
        file.read_to_end(&mut storage)
            .map_err(|e| ModelError::corrupt(format!("reading storage `{entry}` of `{name}`: {e}"), path))?;
        Ok(storage)
    }
}

/// Fills `buf` from `file` at byte `offset` without moving a shared cursor (parallel reads).
#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

/// Fills `buf` from `file` at byte `offset` without moving a shared cursor (parallel reads).
#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, buf, offset) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn read_pytorch_zip(path: &Path) -> Result<RawCheckpoint, ModelError> {
    let file = File::open(path).map_err(|e| ModelError::io("open the weights file", path, e))?;
    // A second handle on the same open file for the positional reads (they do not use its cursor).
    let reader = file
        .try_clone()
        .map_err(|e| ModelError::io("open the weights file", path, e))?;
    let mut zip = zip::ZipArchive::new(BufReader::new(reader)).map_err(|e| {
        ModelError::corrupt(
            format!("not a complete zip archive ({e}); the download was probably cut short"),
            path,
        )
    })?;
    let entries: Vec<String> = zip
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .collect();
    if entries
        .iter()
        .any(|e| e.ends_with("constants.pkl") || e.contains("/code/"))
    {
        return Err(unknown(
            path,
            "a TorchScript archive (torch.jit.save); save the model's state_dict() with torch.save instead",
        ));
    }
    let pkl: Vec<&String> = entries.iter().filter(|e| e.ends_with("data.pkl")).collect();
    let pkl = match pkl.as_slice() {
        [one] => (*one).clone(),
        [] => {
            return Err(unknown(
                path,
                "a zip archive without data.pkl, not a PyTorch checkpoint",
            ))
        }
        _ => {
            return Err(unknown(
                path,
                "a zip archive with several data.pkl, not a single checkpoint",
            ))
        }
    };
    let dir = PathBuf::from(pkl.trim_end_matches(".pkl"));
    let object = {
        let entry = zip
            .by_name(&pkl)
            .map_err(|e| ModelError::corrupt(format!("{pkl}: {e}"), path))?;
        let mut reader = BufReader::new(entry);
        let mut stack = Stack::empty();
        stack
            .read_loop(&mut reader)
            .map_err(|e| ModelError::corrupt(format!("unreadable {pkl}: {e}"), path))?;
        stack
            .finalize()
            .map_err(|e| ModelError::corrupt(format!("unreadable {pkl}: {e}"), path))?
    };
    let Object::Dict(items) = object else {
        return Err(unknown(
            path,
            "a PyTorch file whose top level is not a dict of tensors (a pickled module?)",
        ));
    };
    let mut names = Vec::with_capacity(items.len());
    let mut nested: Vec<String> = Vec::new();
    let mut top_keys: Vec<String> = Vec::new();
    for (key, value) in items {
        let Object::Unicode(key_str) = &key else { continue };
        let key_str = key_str.clone();
        // `state_dict()` pickles its `_metadata` attribute (module versions) next to the tensors.
        if key_str == "_metadata" {
            continue;
        }
        top_keys.push(key_str.clone());
        if let Object::Dict(inner) = &value {
            if inner.iter().any(|(_, v)| is_tensor_object(v)) {
                nested.push(key_str);
            }
            continue;
        }
        match value.into_tensor_info(key, &dir) {
            Ok(Some(info)) => {
                let elem = match info.dtype {
                    DType::F16 => ElemType::F16,
                    DType::BF16 => ElemType::BF16,
                    DType::F32 => ElemType::F32,
                    DType::F64 => ElemType::F64,
                    other => {
                        return Err(ModelError::UnsupportedDtype {
                            name: key_str,
                            dtype: format!("{other:?}"),
                            path: path.to_path_buf(),
                        })
                    }
                };
                // Candle's pickle reader stores the storage offset in bytes.
                let offset = info.layout.start_offset() / elem.size();
                let loc = Loc::Zip {
                    entry: info.path.clone(),
                    elem,
                    shape: info.layout.dims().to_vec(),
                    stride: info.layout.stride().to_vec(),
                    offset,
                };
                names.push((key_str, loc));
            }
            Ok(None) => {}
            Err(e) => {
                return Err(ModelError::UnsupportedDtype {
                    name: key_str,
                    dtype: e.to_string(),
                    path: path.to_path_buf(),
                })
            }
        }
    }
    if names.is_empty() && !nested.is_empty() {
        let inner = ["state_dict", "model", "model_state_dict", "module", "ema"]
            .iter()
            .find(|k| nested.iter().any(|n| n == *k))
            .map(|k| (*k).to_string())
            .or_else(|| nested.first().cloned())
            .unwrap_or_default();
        return Err(ModelError::NestedStateDict {
            keys: truncated_list(top_keys.into_iter()),
            inner,
            path: path.to_path_buf(),
        });
    }
    let mut stored = HashMap::new();
    for (_, loc) in &names {
        let Loc::Zip { entry, .. } = loc else { continue };
        if stored.contains_key(entry) {
            continue;
        }
        let raw_entry = zip
            .by_name_raw(entry.as_bytes())
            .map_err(|e| ModelError::corrupt(format!("storage `{entry}`: {e}"), path))?;
        if let (zip::CompressionMethod::Stored, Some(start)) =
            (raw_entry.compression(), raw_entry.data_start())
        {
            let info = StoredEntry {
                start,
                size: raw_entry.size(),
                crc32: raw_entry.crc32(),
            };
            drop(raw_entry);
            stored.insert(entry.clone(), info);
        }
    }
    Ok(RawCheckpoint {
        names,
        zip: Some(Mutex::new(zip)),
        stored,
        file,
    })
}

fn is_tensor_object(obj: &Object) -> bool {
    matches!(obj, Object::Reduce { callable, .. }
        if matches!(callable.as_ref(), Object::Class { module_name, class_name }
            if module_name.starts_with("torch") && class_name.starts_with("_rebuild")))
}

#[derive(serde::Deserialize)]
struct StEntry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [u64; 2],
}

fn read_safetensors(path: &Path) -> Result<RawCheckpoint, ModelError> {
    let mut file = File::open(path).map_err(|e| ModelError::io("open the weights file", path, e))?;
    let file_len = file
        .metadata()
        .map_err(|e| ModelError::io("read the weights file's size", path, e))?
        .len();
    let mut len_bytes = [0u8; 8];
    file.read_exact(&mut len_bytes)
        .map_err(|e| ModelError::corrupt(format!("header: {e}"), path))?;
    let header_len = u64::from_le_bytes(len_bytes);
    if header_len.saturating_add(8) > file_len || header_len > 100_000_000 {
        return Err(ModelError::corrupt(
            format!("safetensors header of {header_len} bytes but the file has {file_len} bytes"),
            path,
        ));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header)
        .map_err(|e| ModelError::corrupt(format!("header: {e}"), path))?;
    let header: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| ModelError::corrupt(format!("unreadable safetensors header: {e}"), path))?;
    let data_start = 8 + header_len;
    let mut names = Vec::with_capacity(header.len());
    let mut data_end = 0u64;
    for (name, value) in header {
        if name == "__metadata__" {
            continue;
        }
        let entry: StEntry = serde_json::from_value(value)
            .map_err(|e| ModelError::corrupt(format!("header entry of `{name}`: {e}"), path))?;
        let elem = match entry.dtype.as_str() {
            "F16" => ElemType::F16,
            "BF16" => ElemType::BF16,
            "F32" => ElemType::F32,
            "F64" => ElemType::F64,
            other => {
                return Err(ModelError::UnsupportedDtype {
                    name,
                    dtype: other.to_string(),
                    path: path.to_path_buf(),
                })
            }
        };
        let [begin, end] = entry.data_offsets;
        let numel: u64 = entry.shape.iter().map(|&d| d as u64).product();
        if end < begin || end - begin != numel * elem.size() as u64 {
            return Err(ModelError::corrupt(
                format!(
                    "tensor `{name}` {:?} has data offsets {begin}..{end}",
                    entry.shape
                ),
                path,
            ));
        }
        data_end = data_end.max(end);
        names.push((
            name,
            Loc::Safetensors {
                elem,
                shape: entry.shape,
                start: data_start + begin,
                end: data_start + end,
            },
        ));
    }
    if data_start + data_end > file_len {
        return Err(ModelError::corrupt(
            format!(
                "the data should end at byte {} but the file has {file_len} bytes",
                data_start + data_end
            ),
            path,
        ));
    }
    Ok(RawCheckpoint {
        names,
        zip: None,
        stored: HashMap::new(),
        file,
    })
}

/// Copies the elements of a strided view out of its storage, row-major (the storage itself is returned
/// when the view covers all of it, the usual case). `None` if the view does not fit the storage.
fn gather(
    storage: Vec<u8>,
    elem: usize,
    shape: &[usize],
    stride: &[usize],
    offset: usize,
) -> Option<Vec<u8>> {
    let numel: usize = shape.iter().product();
    if numel == 0 {
        return Some(Vec::new());
    }
    if stride.len() != shape.len() {
        return None;
    }
    let last = shape
        .iter()
        .zip(stride)
        .try_fold(offset, |acc, (&d, &s)| acc.checked_add((d - 1).checked_mul(s)?))?;
    if (last + 1).checked_mul(elem)? > storage.len() {
        return None;
    }
    let mut contiguous = true;
    let mut expected = 1;
    for (&d, &s) in shape.iter().zip(stride).rev() {
        if d != 1 && s != expected {
            contiguous = false;
        }
        expected *= d;
    }
    if contiguous {
        if offset == 0 && numel * elem == storage.len() {
            return Some(storage);
        }
        return storage
            .get(offset * elem..(offset + numel) * elem)
            .map(<[u8]>::to_vec);
    }
    let mut out = Vec::with_capacity(numel * elem);
    let mut index = vec![0usize; shape.len()];
    for _ in 0..numel {
        let at: usize = offset + index.iter().zip(stride).map(|(i, s)| i * s).sum::<usize>();
        out.extend_from_slice(storage.get(at * elem..(at + 1) * elem)?);
        for dim in (0..shape.len()).rev() {
            index[dim] += 1;
            if index[dim] < shape[dim] {
                break;
            }
            index[dim] = 0;
        }
    }
    Some(out)
}

/// Little-endian bytes → tensor of `dtype` on `device`, rejecting NaN/inf and values that overflow f16.
fn decode(
    name: &str,
    elem: ElemType,
    bytes: &[u8],
    shape: &[usize],
    dtype: DType,
    device: &Device,
    path: &Path,
) -> Result<Tensor, ModelError> {
    let non_finite = |count: usize| ModelError::NonFiniteWeight {
        name: name.to_string(),
        detail: format!("contains {count} NaN/inf value(s)"),
        path: path.to_path_buf(),
    };
    let check_f16_range = |max_abs: f64| {
        if dtype == DType::F16 && max_abs > f64::from(f16::MAX) {
            Err(ModelError::NonFiniteWeight {
                name: name.to_string(),
                detail: format!(
                    "has values up to {max_abs:e}, beyond the f16 range; load the weights as f32"
                ),
                path: path.to_path_buf(),
            })
        } else {
            Ok(())
        }
    };
    let cpu = Device::Cpu;
    // The usual load (f16 checkpoint → f32 network): convert straight into the final buffer with the
    // CPU's vector conversion instead of building an f16 tensor and converting that.
    if elem == ElemType::F16 && dtype == DType::F32 {
        let halves: Vec<f16> = bytes
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]))
            .collect();
        let mut v = vec![0f32; halves.len()];
        half::slice::HalfFloatSliceExt::convert_to_f32_slice(halves.as_slice(), &mut v);
        drop(halves);
        let bad = v.iter().filter(|x| !x.is_finite()).count();
        if bad > 0 {
            return Err(non_finite(bad));
        }
        return Ok(Tensor::from_vec(v, shape, &cpu)?.to_device(device)?);
    }
    let tensor = match elem {
        ElemType::F16 => {
            let v: Vec<f16> = bytes
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]))
                .collect();
            let bad = v.iter().filter(|x| !x.is_finite()).count();
            if bad > 0 {
                return Err(non_finite(bad));
            }
            Tensor::from_vec(v, shape, &cpu)?
        }
        ElemType::BF16 => {
            let v: Vec<bf16> = bytes
                .chunks_exact(2)
                .map(|c| bf16::from_le_bytes([c[0], c[1]]))
                .collect();
            let bad = v.iter().filter(|x| !x.is_finite()).count();
            if bad > 0 {
                return Err(non_finite(bad));
            }
            check_f16_range(v.iter().map(|x| f64::from(x.to_f32().abs())).fold(0.0, f64::max))?;
            Tensor::from_vec(v, shape, &cpu)?
        }
        ElemType::F32 => {
            let v: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let bad = v.iter().filter(|x| !x.is_finite()).count();
            if bad > 0 {
                return Err(non_finite(bad));
            }
            check_f16_range(v.iter().map(|x| f64::from(x.abs())).fold(0.0, f64::max))?;
            Tensor::from_vec(v, shape, &cpu)?
        }
        ElemType::F64 => {
            let v: Vec<f64> = bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect();
            let bad = v.iter().filter(|x| !x.is_finite()).count();
            if bad > 0 {
                return Err(non_finite(bad));
            }
            let max_abs = v.iter().map(|x| x.abs()).fold(0.0, f64::max);
            check_f16_range(max_abs)?;
            if dtype != DType::F64 && max_abs > f64::from(f32::MAX) {
                return Err(non_finite(
                    v.iter().filter(|x| x.abs() > f64::from(f32::MAX)).count(),
                ));
            }
            Tensor::from_vec(v, shape, &cpu)?
        }
    };
    Ok(tensor.to_dtype(dtype)?.to_device(device)?)
}

// ---------------------------------------------------------------------------------------------------
// Hugging Face → Apple names (depth_pro_spec.md §9.4)

const HF_VIT_PREFIXES: [(&str, &str); 3] = [
    ("depth_pro.encoder.patch_encoder.model.", "encoder.patch_encoder."),
    ("depth_pro.encoder.image_encoder.model.", "encoder.image_encoder."),
    ("fov_model.fov_encoder.model.", "fov.encoder.0."),
];

/// Maps a Hugging Face `DepthProForDepthEstimation` key to Apple's `depth_pro.pt` key; `None` for a key
/// that is not part of Depth Pro.
///
/// Prefixes are matched from the start of the key, so `fov_model.head.layers.4.weight` can never be
/// taken for the depth head's `head.layers.4.weight` (a pitfall of the regex-based HF conversion).
///
/// ```
/// use depth2ply_model::weights::{hf_to_apple_key, HfKeyMapping};
/// assert_eq!(
///     hf_to_apple_key("fusion_stage.intermediate.0.residual_layer1.convolution2.bias"),
///     Some(HfKeyMapping::Renamed("decoder.fusions.4.resnet1.residual.3.bias".into()))
/// );
/// assert_eq!(
///     hf_to_apple_key("fov_model.fov_encoder.model.encoder.layer.3.attention.attention.key.weight"),
///     Some(HfKeyMapping::QkvPart { apple: "fov.encoder.0.blocks.3.attn.qkv.weight".into(), part: 1 })
/// );
/// ```
pub fn hf_to_apple_key(hf: &str) -> Option<HfKeyMapping> {
    for (hf_prefix, apple_prefix) in HF_VIT_PREFIXES {
        if let Some(rest) = hf.strip_prefix(hf_prefix) {
            return vit_key(rest).map(|m| match m {
                HfKeyMapping::Renamed(k) => HfKeyMapping::Renamed(format!("{apple_prefix}{k}")),
                HfKeyMapping::QkvPart { apple, part } => HfKeyMapping::QkvPart {
                    apple: format!("{apple_prefix}{apple}"),
                    part,
                },
                HfKeyMapping::Ignored => HfKeyMapping::Ignored,
            });
        }
    }
    let renamed = |s: String| Some(HfKeyMapping::Renamed(s));
    if let Some(rest) = hf.strip_prefix("depth_pro.neck.feature_upsample.") {
        if let Some(p) = rest.strip_prefix("image_block.layers.0.") {
            return param(p).and_then(|p| renamed(format!("encoder.upsample_lowres.{p}")));
        }
        if let Some(r) = rest.strip_prefix("scaled_images.") {
            // Ratio order 0.25, 0.5, 1 ↔ Apple upsample2, upsample1, upsample0.
            let (i, r) = index(r)?;
            let (j, p) = index(r.strip_prefix("layers.")?)?;
            return (i <= 2 && p == "weight")
                .then(|| HfKeyMapping::Renamed(format!("encoder.upsample{}.{j}.weight", 2 - i)));
        }
        if let Some(r) = rest.strip_prefix("intermediate.") {
            // Hook order low-res first: intermediate.0 ↔ upsample_latent1, intermediate.1 ↔ upsample_latent0.
            let (i, r) = index(r)?;
            let (j, p) = index(r.strip_prefix("layers.")?)?;
            return (i <= 1 && p == "weight")
                .then(|| HfKeyMapping::Renamed(format!("encoder.upsample_latent{}.{j}.weight", 1 - i)));
        }
        return None;
    }
    if let Some(p) = hf.strip_prefix("depth_pro.neck.fuse_image_with_low_res.") {
        return param(p).and_then(|p| renamed(format!("encoder.fuse_lowres.{p}")));
    }
    if let Some(r) = hf.strip_prefix("depth_pro.neck.feature_projection.projections.") {
        let (j, p) = index(r)?;
        return (j <= 4 && p == "weight")
            .then(|| HfKeyMapping::Renamed(format!("decoder.convs.{}.weight", 4 - j)));
    }
    if let Some(r) = hf.strip_prefix("fusion_stage.intermediate.") {
        let (j, r) = index(r)?;
        if j > 3 {
            return None;
        }
        return fusion_key(r).and_then(|k| renamed(format!("decoder.fusions.{}.{k}", 4 - j)));
    }
    if let Some(r) = hf.strip_prefix("fusion_stage.final.") {
        return fusion_key(r).and_then(|k| renamed(format!("decoder.fusions.0.{k}")));
    }
    if let Some(r) = hf.strip_prefix("head.layers.") {
        let (j, p) = index(r)?;
        return param(p).and_then(|p| renamed(format!("head.{j}.{p}")));
    }
    if let Some(p) = hf.strip_prefix("fov_model.fov_encoder.neck.") {
        return param(p).and_then(|p| renamed(format!("fov.encoder.1.{p}")));
    }
    if let Some(p) = hf.strip_prefix("fov_model.conv.") {
        return param(p).and_then(|p| renamed(format!("fov.downsample.0.{p}")));
    }
    if let Some(r) = hf.strip_prefix("fov_model.head.layers.") {
        let (j, p) = index(r)?;
        return param(p).and_then(|p| renamed(format!("fov.head.{j}.{p}")));
    }
    None
}

/// Keys inside one Dinov2 model.
fn vit_key(rest: &str) -> Option<HfKeyMapping> {
    let renamed = |s: String| Some(HfKeyMapping::Renamed(s));
    match rest {
        "embeddings.cls_token" => return renamed("cls_token".into()),
        "embeddings.position_embeddings" => return renamed("pos_embed".into()),
        "embeddings.mask_token" => return Some(HfKeyMapping::Ignored),
        _ => {}
    }
    if let Some(p) = rest.strip_prefix("embeddings.patch_embeddings.projection.") {
        return param(p).and_then(|p| renamed(format!("patch_embed.proj.{p}")));
    }
    if let Some(p) = rest.strip_prefix("layernorm.") {
        return param(p).and_then(|p| renamed(format!("norm.{p}")));
    }
    let (i, r) = index(rest.strip_prefix("encoder.layer.")?)?;
    let block = format!("blocks.{i}.");
    match r {
        "layer_scale1.lambda1" => return renamed(format!("{block}ls1.gamma")),
        "layer_scale2.lambda1" => return renamed(format!("{block}ls2.gamma")),
        _ => {}
    }
    for keep in ["norm1.", "norm2.", "mlp.fc1.", "mlp.fc2."] {
        if let Some(p) = r.strip_prefix(keep) {
            return param(p).and_then(|p| renamed(format!("{block}{keep}{p}")));
        }
    }
    const QKV: [(&str, usize); 6] = [
        ("attention.attention.query.", 0),
        ("attention.attention.key.", 1),
        ("attention.attention.value.", 2),
        ("attention.q_proj.", 0),
        ("attention.k_proj.", 1),
        ("attention.v_proj.", 2),
    ];
    for (prefix, part) in QKV {
        if let Some(p) = r.strip_prefix(prefix) {
            return param(p).map(|p| HfKeyMapping::QkvPart {
                apple: format!("{block}attn.qkv.{p}"),
                part,
            });
        }
    }
    for prefix in ["attention.output.dense.", "attention.o_proj."] {
        if let Some(p) = r.strip_prefix(prefix) {
            return param(p).and_then(|p| renamed(format!("{block}attn.proj.{p}")));
        }
    }
    None
}

/// Keys inside one fusion block (`DepthProFeatureFusionLayer` ↔ `FeatureFusionBlock2d`).
fn fusion_key(r: &str) -> Option<String> {
    if let Some(p) = r.strip_prefix("deconv.") {
        return (p == "weight").then(|| "deconv.weight".to_string());
    }
    if let Some(p) = r.strip_prefix("projection.") {
        return param(p).map(|p| format!("out_conv.{p}"));
    }
    for n in [1, 2] {
        if let Some(c) = r.strip_prefix(&format!("residual_layer{n}.")) {
            if let Some(p) = c.strip_prefix("convolution1.") {
                return param(p).map(|p| format!("resnet{n}.residual.1.{p}"));
            }
            if let Some(p) = c.strip_prefix("convolution2.") {
                return param(p).map(|p| format!("resnet{n}.residual.3.{p}"));
            }
        }
    }
    None
}

fn param(p: &str) -> Option<&str> {
    matches!(p, "weight" | "bias").then_some(p)
}

/// Splits `"12.rest"` into `(12, "rest")`.
fn index(s: &str) -> Option<(usize, &str)> {
    let (num, rest) = s.split_once('.')?;
    Some((num.parse().ok()?, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_handles_views() {
        // storage 0..12 as u8 elements of size 1; a 3×4 matrix.
        let storage: Vec<u8> = (0..12).collect();
        let gather =
            |shape: &[usize], stride: &[usize], offset| gather(storage.clone(), 1, shape, stride, offset);
        assert_eq!(gather(&[3, 4], &[4, 1], 0), Some(storage.clone()));
        // Transposed view (4×3, strides (1, 4)).
        assert_eq!(
            gather(&[4, 3], &[1, 4], 0),
            Some(vec![0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11])
        );
        // Row 1 and a 2×2 block at (1, 2).
        assert_eq!(gather(&[4], &[1], 4), Some(vec![4, 5, 6, 7]));
        assert_eq!(gather(&[2, 2], &[4, 1], 6), Some(vec![6, 7, 10, 11]));
        // Out of the storage.
        assert_eq!(gather(&[2, 4], &[4, 1], 8), None);
        assert_eq!(gather(&[0, 4], &[4, 1], 99), Some(vec![]));
    }

    #[test]
    fn hf_keys_map_to_apple_keys() {
        let r = |s: &str| Some(HfKeyMapping::Renamed(s.to_string()));
        let cases = [
            (
                "depth_pro.encoder.patch_encoder.model.embeddings.cls_token",
                r("encoder.patch_encoder.cls_token"),
            ),
            (
                "depth_pro.encoder.image_encoder.model.embeddings.position_embeddings",
                r("encoder.image_encoder.pos_embed"),
            ),
            (
                "fov_model.fov_encoder.model.embeddings.patch_embeddings.projection.bias",
                r("fov.encoder.0.patch_embed.proj.bias"),
            ),
            (
                "depth_pro.encoder.patch_encoder.model.encoder.layer.23.layer_scale2.lambda1",
                r("encoder.patch_encoder.blocks.23.ls2.gamma"),
            ),
            (
                "depth_pro.encoder.patch_encoder.model.encoder.layer.0.attention.output.dense.weight",
                r("encoder.patch_encoder.blocks.0.attn.proj.weight"),
            ),
            (
                "depth_pro.encoder.patch_encoder.model.encoder.layer.0.attention.o_proj.bias",
                r("encoder.patch_encoder.blocks.0.attn.proj.bias"),
            ),
            (
                "depth_pro.encoder.image_encoder.model.encoder.layer.5.attention.v_proj.bias",
                Some(HfKeyMapping::QkvPart {
                    apple: "encoder.image_encoder.blocks.5.attn.qkv.bias".into(),
                    part: 2,
                }),
            ),
            (
                "depth_pro.encoder.image_encoder.model.layernorm.weight",
                r("encoder.image_encoder.norm.weight"),
            ),
            (
                "depth_pro.encoder.image_encoder.model.embeddings.mask_token",
                Some(HfKeyMapping::Ignored),
            ),
            (
                "depth_pro.neck.feature_upsample.image_block.layers.0.bias",
                r("encoder.upsample_lowres.bias"),
            ),
            (
                "depth_pro.neck.feature_upsample.scaled_images.0.layers.1.weight",
                r("encoder.upsample2.1.weight"),
            ),
            (
                "depth_pro.neck.feature_upsample.scaled_images.2.layers.0.weight",
                r("encoder.upsample0.0.weight"),
            ),
            (
                "depth_pro.neck.feature_upsample.intermediate.0.layers.2.weight",
                r("encoder.upsample_latent1.2.weight"),
            ),
            (
                "depth_pro.neck.feature_upsample.intermediate.1.layers.3.weight",
                r("encoder.upsample_latent0.3.weight"),
            ),
            (
                "depth_pro.neck.fuse_image_with_low_res.weight",
                r("encoder.fuse_lowres.weight"),
            ),
            (
                "depth_pro.neck.feature_projection.projections.0.weight",
                r("decoder.convs.4.weight"),
            ),
            (
                "depth_pro.neck.feature_projection.projections.3.weight",
                r("decoder.convs.1.weight"),
            ),
            (
                "fusion_stage.intermediate.3.deconv.weight",
                r("decoder.fusions.1.deconv.weight"),
            ),
            (
                "fusion_stage.final.projection.bias",
                r("decoder.fusions.0.out_conv.bias"),
            ),
            (
                "fusion_stage.final.residual_layer2.convolution1.weight",
                r("decoder.fusions.0.resnet2.residual.1.weight"),
            ),
            ("head.layers.4.bias", r("head.4.bias")),
            ("fov_model.head.layers.4.weight", r("fov.head.4.weight")),
            ("fov_model.fov_encoder.neck.weight", r("fov.encoder.1.weight")),
            ("fov_model.conv.bias", r("fov.downsample.0.bias")),
            ("fusion_stage.final.deconv.bias", None),
            (
                "depth_pro.neck.feature_upsample.scaled_images.3.layers.0.weight",
                None,
            ),
            ("something.else", None),
        ];
        for (hf, expected) in cases {
            assert_eq!(hf_to_apple_key(hf), expected, "{hf}");
        }
    }
}
