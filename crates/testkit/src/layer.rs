//! Layer tars: the base layers (tiny, busybox), per-image random layers, and the seeded
//! random byte stream they are filled with. Every tar member has fixed metadata (mtime
//! 2000-01-01, root:root), so equal content gives equal layer digests.

use std::fs::File;
use std::io::{self, Read, Seek as _, SeekFrom, Write};
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use sha2::{Digest as _, Sha256};
use tar::{EntryType, Header};

/// The mtime of every tar member: 2000-01-01T00:00:00Z.
pub(crate) const EPOCH: u64 = 946_684_800;

/// A layer tar written to an anonymous temp file, with its digest (the config's diff ID).
pub(crate) struct Layer {
    pub(crate) file: File,
    /// Hex sha256 of the uncompressed tar (without `sha256:`).
    pub(crate) diff_id: String,
    pub(crate) size: u64,
}

/// A tar header with the fixed metadata every member of every archive gets.
pub(crate) fn header(kind: EntryType, mode: u32, size: u64) -> io::Result<Header> {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(EPOCH);
    header.set_uid(0);
    header.set_gid(0);
    header.set_username("root")?;
    header.set_groupname("root")?;
    Ok(header)
}

/// Builds one layer tar in a temp file in `dir`; `add_members` appends its members.
fn build(
    dir: &Path,
    add_members: impl FnOnce(&mut tar::Builder<HashingWriter<File>>) -> io::Result<()>,
) -> Result<Layer> {
    let file = tempfile::tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary layer file in {}", dir.display()))?;
    let mut builder = tar::Builder::new(HashingWriter::new(file));
    add_members(&mut builder).context("cannot write a layer tar")?;
    let hashing = builder.into_inner().context("cannot finish a layer tar")?;
    let (mut file, diff_id, size) = hashing.finish();
    file.seek(SeekFrom::Start(0))
        .context("cannot rewind a temporary layer file")?;
    Ok(Layer {
        file,
        diff_id,
        size,
    })
}

fn add_file(
    builder: &mut tar::Builder<impl Write>,
    path: &str,
    mode: u32,
    body: &[u8],
) -> io::Result<()> {
    let mut header = header(EntryType::Regular, mode, body.len() as u64)?;
    builder.append_data(&mut header, path, body)
}

fn add_dir(builder: &mut tar::Builder<impl Write>, path: &str, mode: u32) -> io::Result<()> {
    let mut header = header(EntryType::Directory, mode, 0)?;
    builder.append_data(&mut header, path, io::empty())
}

/// The base layer every image shares when no busybox is asked for: one tiny file.
pub(crate) fn tiny(dir: &Path) -> Result<Layer> {
    build(dir, |builder| {
        add_file(builder, "pgsb", 0o644, b"pruneguard test image layer\n")
    })
}

/// The busybox base layer: /bin/busybox, /bin/sh -> busybox, /tmp.
pub(crate) fn busybox(dir: &Path, busybox: &Path) -> Result<Layer> {
    let body = std::fs::read(busybox).with_context(|| {
        format!(
            "cannot read {} for a busybox image; install Debian's busybox-static",
            busybox.display()
        )
    })?;
    // A dynamically linked busybox would not run in an image that has no libc; the ELF
    // interpreter's path sits near the start of the file.
    let head = &body[..body.len().min(4096)];
    if contains(head, b"/lib64/ld-linux") || contains(head, b"/lib/ld-linux") {
        bail!(
            "{} is dynamically linked and cannot run in an image without libc; install \
             Debian's busybox-static",
            busybox.display()
        );
    }
    build(dir, |builder| {
        add_dir(builder, "bin", 0o755)?;
        add_file(builder, "bin/busybox", 0o755, &body)?;
        let mut link = header(EntryType::Symlink, 0o777, 0)?;
        builder.append_link(&mut link, "bin/sh", "busybox")?;
        add_dir(builder, "tmp", 0o1777)?;
        add_file(builder, "pgsb", 0o644, b"pruneguard b\n")
    })
}

/// An image's own layer: one file of `size` random bytes drawn from `seed`.
pub(crate) fn random(dir: &Path, seed: &str, size: u64) -> Result<Layer> {
    build(dir, |builder| {
        let mut header = header(EntryType::Regular, 0o644, size)?;
        builder.append_data(&mut header, "pgsb-data.bin", RandomBytes::new(seed, size))
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// A writer that hashes and counts what passes through it.
pub(crate) struct HashingWriter<W> {
    inner: W,
    sha: Sha256,
    size: u64,
}

impl<W> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            sha: Sha256::new(),
            size: 0,
        }
    }

    /// The inner writer, the hex sha256 and the byte count of everything written.
    pub(crate) fn finish(self) -> (W, String, u64) {
        (self.inner, crate::hex(&self.sha.finalize()), self.size)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.sha.update(&buf[..written]);
        self.size += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `len` deterministic pseudo-random bytes from a seed: SHA-256 in counter mode
/// (`sha256(seed || counter)`, 32 bytes per counter value). Not for cryptography; it only has
/// to be stable across versions and incompressible, so layers really take their size.
pub struct RandomBytes {
    keyed: Sha256,
    counter: u64,
    block: [u8; 32],
    used: usize,
    left: u64,
}

impl RandomBytes {
    pub fn new(seed: &str, len: u64) -> RandomBytes {
        let mut keyed = Sha256::new();
        keyed.update(seed.as_bytes());
        // A separator, so seed "a" + counter never collides with seed "a\0…".
        keyed.update([0xff]);
        RandomBytes {
            keyed,
            counter: 0,
            block: [0; 32],
            used: 32,
            left: len,
        }
    }
}

impl Read for RandomBytes {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = usize::try_from(self.left).map_or(buf.len(), |left| left.min(buf.len()));
        let mut filled = 0;
        while filled < want {
            if self.used == self.block.len() {
                let mut hasher = self.keyed.clone();
                hasher.update(self.counter.to_le_bytes());
                self.block.copy_from_slice(&hasher.finalize());
                self.counter += 1;
                self.used = 0;
            }
            let n = (self.block.len() - self.used).min(want - filled);
            buf[filled..filled + n].copy_from_slice(&self.block[self.used..self.used + n]);
            self.used += n;
            filled += n;
        }
        self.left -= want as u64;
        Ok(want)
    }
}
