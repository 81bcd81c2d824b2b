//! Envelope encryption of stored client credentials (`ClientCredentials.*`):
//! AES-256-GCM under a 32-byte master key, a fresh random nonce per value,
//! and the client id and setting name as associated data, so a ciphertext
//! cannot be moved to another row. Each value records the version (a
//! fingerprint) of the key that sealed it, so the key can be rotated.

use std::{
    fmt,
    io::Write,
    path::{Path, PathBuf},
};

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("master key must be 32 bytes, base64-encoded")]
    BadKey,
    #[error("value cannot be decrypted with this master key")]
    Decrypt,
    #[error("encryption failed")]
    Encrypt,
    #[error("OS random generator: {0}")]
    Random(getrandom::Error),
    #[error("{0}")]
    Io(String),
    #[error(
        "a master key is required for this database: set LATCHKEY_MASTER_KEY (base64 of 32 bytes) or --master-key-file"
    )]
    Missing,
}

/// One AES-256 key and its fingerprint.
#[derive(Clone)]
struct SealingKey {
    key: Zeroizing<[u8; 32]>,
    version: String,
}

impl SealingKey {
    /// Takes the bytes already in `Zeroizing`, so no plain copy of a key
    /// is left behind by its constructors.
    fn new(key: Zeroizing<[u8; 32]>) -> Self {
        let digest = Sha256::new()
            .chain_update(b"latchkey master key v1\0")
            .chain_update(key.as_ref())
            .finalize();
        let version = hex::encode(&digest[..8]);
        Self { key, version }
    }

    fn cipher(&self) -> Result<Aes256Gcm, CryptoError> {
        Aes256Gcm::new_from_slice(self.key.as_ref()).map_err(|_| CryptoError::BadKey)
    }
}

/// The master keyring that seals client credentials: the first key seals,
/// every key opens, so a rotation can roll out as `new,old` first and
/// retire `old` once every value is re-sealed. `Debug` shows only versions.
pub struct MasterKey {
    /// Never empty; the first is the sealing key.
    keys: Vec<SealingKey>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let versions: Vec<&str> = self.versions().collect();
        write!(f, "MasterKey(versions {})", versions.join(", "))
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: Zeroizing<[u8; 32]>) -> Self {
        Self {
            keys: vec![SealingKey::new(bytes)],
        }
    }

    /// A keyring from its text: base64 keys separated by commas or line
    /// breaks, the sealing key first (surrounding whitespace ignored; a key
    /// given twice counts once).
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let mut keys: Vec<SealingKey> = Vec::new();
        for part in text.split([',', '\n', '\r']).map(str::trim) {
            if part.is_empty() {
                continue;
            }
            let bytes = Zeroizing::new(STANDARD.decode(part).map_err(|_| CryptoError::BadKey)?);
            if bytes.len() != 32 {
                return Err(CryptoError::BadKey);
            }
            let mut array = Zeroizing::new([0u8; 32]);
            array.copy_from_slice(&bytes);
            let key = SealingKey::new(array);
            if !keys.iter().any(|k| k.version == key.version) {
                keys.push(key);
            }
        }
        if keys.is_empty() {
            return Err(CryptoError::BadKey);
        }
        Ok(Self { keys })
    }

    /// `self`'s keys after `first`'s: `first` seals, all open.
    pub fn sealing_with(first: MasterKey, then: &MasterKey) -> Self {
        let mut keys = first.keys;
        for key in &then.keys {
            if !keys.iter().any(|k| k.version == key.version) {
                keys.push(key.clone());
            }
        }
        Self { keys }
    }

    /// A new random key from the OS CSPRNG.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut()).map_err(CryptoError::Random)?;
        Ok(Self::from_bytes(bytes))
    }

    fn sealing(&self) -> &SealingKey {
        // `keys` is never empty (every constructor ensures it).
        &self.keys[0]
    }

    /// The sealing key, base64 (what a key file holds).
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.sealing().key.as_ref()))
    }

    /// The sealing key's fingerprint, stored beside every value it seals.
    pub fn version(&self) -> &str {
        &self.sealing().version
    }

    /// Every key's fingerprint, the sealing key first.
    pub fn versions(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.version.as_str())
    }

    /// Seals `plaintext` with the sealing key, bound to `aad`: base64 of
    /// nonce || ciphertext+tag.
    pub fn encrypt(&self, plaintext: &str, aad: &[u8]) -> Result<String, CryptoError> {
        let cipher = self.sealing().cipher()?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(CryptoError::Random)?;
        let sealed = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad,
                },
            )
            .map_err(|_| CryptoError::Encrypt)?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(STANDARD.encode(out))
    }

    /// Opens what `encrypt` sealed with any key of the ring and the same
    /// `aad` (AES-GCM's tag tells the right key).
    pub fn decrypt(&self, sealed: &str, aad: &[u8]) -> Result<Zeroizing<String>, CryptoError> {
        let bytes = STANDARD.decode(sealed).map_err(|_| CryptoError::Decrypt)?;
        if bytes.len() < NONCE_LEN {
            return Err(CryptoError::Decrypt);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Decrypt)?;
        for key in &self.keys {
            let opened = key.cipher()?.decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            );
            if let Ok(plain) = opened {
                let plain = Zeroizing::new(plain);
                return String::from_utf8(plain.to_vec())
                    .map(Zeroizing::new)
                    .map_err(|_| CryptoError::Decrypt);
            }
        }
        Err(CryptoError::Decrypt)
    }
}

/// Associated data binding a sealed setting to its client and name.
pub fn setting_aad(client_id: &str, name: &str) -> Vec<u8> {
    format!("{client_id}\0{name}").into_bytes()
}

/// Where the master key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterKeyOrigin {
    Environment,
    File(PathBuf),
    /// Created (or reused) beside the embedded SQLite database: development
    /// only.
    DevelopmentFile(PathBuf),
    /// An in-memory database gets an in-memory key.
    Ephemeral,
}

impl MasterKeyOrigin {
    /// Warns when the key is not fit for production.
    pub fn warn_if_development(&self) {
        match self {
            MasterKeyOrigin::DevelopmentFile(path) => tracing::warn!(
                path = %path.display(),
                "client credentials are sealed with a development master key kept beside the database; set LATCHKEY_MASTER_KEY or --master-key-file in production"
            ),
            MasterKeyOrigin::Ephemeral => tracing::warn!(
                "in-memory database: client credentials are sealed with a key that dies with the process"
            ),
            MasterKeyOrigin::Environment | MasterKeyOrigin::File(_) => {}
        }
    }
}

/// Finds the master key: `LATCHKEY_MASTER_KEY` (`from_env`), else `file`,
/// else, for the embedded SQLite default, a key file beside the database
/// (created with mode 0600 on first use), else an error.
pub fn resolve_master_key(
    database_url: &str,
    from_env: Option<&str>,
    file: Option<&Path>,
) -> Result<(MasterKey, MasterKeyOrigin), CryptoError> {
    if let Some(text) = from_env.filter(|t| !t.trim().is_empty()) {
        return Ok((MasterKey::from_base64(text)?, MasterKeyOrigin::Environment));
    }
    if let Some(path) = file {
        return Ok((read_key_file(path)?, MasterKeyOrigin::File(path.to_owned())));
    }
    match sqlite_file(database_url) {
        Some(SqliteLocation::Memory) => Ok((MasterKey::generate()?, MasterKeyOrigin::Ephemeral)),
        Some(SqliteLocation::File(db)) => {
            let mut name = db.into_os_string();
            name.push(".master-key");
            let path = PathBuf::from(name);
            let key = if path.exists() {
                read_key_file(&path)?
            } else {
                let key = MasterKey::generate()?;
                write_key_file(&path, &key)?;
                key
            };
            Ok((key, MasterKeyOrigin::DevelopmentFile(path)))
        }
        None => Err(CryptoError::Missing),
    }
}

/// Reads a key file: base64 of 32 bytes.
pub fn read_key_file(path: &Path) -> Result<MasterKey, CryptoError> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| CryptoError::Io(format!("cannot read {}: {e}", path.display())))?,
    );
    MasterKey::from_base64(&text)
}

/// Writes a new key file readable by its owner only; never overwrites.
pub fn write_key_file(path: &Path, key: &MasterKey) -> Result<(), CryptoError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| CryptoError::Io(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(key.to_base64().as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .map_err(|e| CryptoError::Io(format!("cannot write {}: {e}", path.display())))
}

enum SqliteLocation {
    Memory,
    File(PathBuf),
}

fn sqlite_file(url: &str) -> Option<SqliteLocation> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" || query.split('&').any(|p| p == "mode=memory") {
        Some(SqliteLocation::Memory)
    } else {
        Some(SqliteLocation::File(PathBuf::from(path)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyring_seals_with_its_first_key_and_opens_with_any() {
        let (old, new) = (
            MasterKey::generate().unwrap(),
            MasterKey::generate().unwrap(),
        );
        let aad = setting_aad("acme", "ClientCredentials.LbApiKey");
        let under_old = old.encrypt("v1", &aad).unwrap();
        let text = format!("{}, {}", new.to_base64().as_str(), old.to_base64().as_str());
        let ring = MasterKey::from_base64(&text).unwrap();
        assert_eq!(ring.version(), new.version());
        assert_eq!(
            ring.versions().collect::<Vec<_>>(),
            [new.version(), old.version()]
        );
        assert_eq!(ring.decrypt(&under_old, &aad).unwrap().as_str(), "v1");
        let under_ring = ring.encrypt("v2", &aad).unwrap();
        assert_eq!(new.decrypt(&under_ring, &aad).unwrap().as_str(), "v2");
        assert!(old.decrypt(&under_ring, &aad).is_err());
        // Key files may hold one key per line.
        let lines = format!(
            "{}\n{}\n",
            new.to_base64().as_str(),
            old.to_base64().as_str()
        );
        assert_eq!(
            MasterKey::from_base64(&lines).unwrap().versions().count(),
            2
        );
        assert!(MasterKey::from_base64(" , ").is_err());
        assert!(!format!("{ring:?}").contains(new.to_base64().as_str()));
        let joined = MasterKey::sealing_with(MasterKey::generate().unwrap(), &ring);
        assert_eq!(joined.versions().count(), 3);
        assert_eq!(joined.decrypt(&under_old, &aad).unwrap().as_str(), "v1");
    }

    #[test]
    fn round_trip_bound_to_its_row() {
        let key = MasterKey::generate().unwrap();
        let sealed = key
            .encrypt("s3cret", &setting_aad("acme", "ClientCredentials.LbApiKey"))
            .unwrap();
        assert!(!sealed.contains("s3cret"));
        let opened = key
            .decrypt(&sealed, &setting_aad("acme", "ClientCredentials.LbApiKey"))
            .unwrap();
        assert_eq!(opened.as_str(), "s3cret");
        // Another row's associated data, or another key: refused.
        assert!(
            key.decrypt(&sealed, &setting_aad("other", "ClientCredentials.LbApiKey"))
                .is_err()
        );
        let other = MasterKey::generate().unwrap();
        assert!(
            other
                .decrypt(&sealed, &setting_aad("acme", "ClientCredentials.LbApiKey"))
                .is_err()
        );
        assert_ne!(key.version(), other.version());
    }

    #[test]
    fn keys_parse_from_base64_and_debug_hides_them() {
        let key = MasterKey::generate().unwrap();
        let again = MasterKey::from_base64(&key.to_base64()).unwrap();
        assert_eq!(key.version(), again.version());
        assert!(!format!("{key:?}").contains(key.to_base64().as_str()));
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
        assert!(MasterKey::from_base64("not base64!").is_err());
    }

    #[test]
    fn the_embedded_default_gets_a_private_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("x.db").display());
        let (key, origin) = resolve_master_key(&url, None, None).unwrap();
        let path = dir.path().join("x.db.master-key");
        assert_eq!(origin, MasterKeyOrigin::DevelopmentFile(path.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (again, _) = resolve_master_key(&url, None, None).unwrap();
        assert_eq!(key.version(), again.version(), "reused, not replaced");
        assert!(matches!(
            resolve_master_key("postgres://localhost/x", None, None),
            Err(CryptoError::Missing)
        ));
        let (_, origin) = resolve_master_key("sqlite::memory:", None, None).unwrap();
        assert_eq!(origin, MasterKeyOrigin::Ephemeral);
    }
}
