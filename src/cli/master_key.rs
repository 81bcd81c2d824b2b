//! `latchkey rotate-master-key`: the key files, then `app::clients::rotate_master_key`.

use std::path::PathBuf;

use anyhow::{Context, bail};

use super::{GlobalArgs, open};
use crate::{
    app,
    security::sealing::{self, MasterKey, MasterKeyOrigin},
};

/// Re-seals every stored credential under the sealing (first) key of the
/// master keyring. The keyring is LATCHKEY_MASTER_KEY / --master-key-file
/// (`new,old`), or, with `--new-master-key-file`, that file's key before the
/// current ones; the development key file of the embedded default is
/// replaced by a new key when neither names one.
pub async fn rotate(global: &GlobalArgs, new_file: Option<PathBuf>) -> anyhow::Result<()> {
    let (current, origin) = global.master_key()?;
    let single = current.versions().count() == 1;
    let (ring, new_path, replace_dev_file) = match (new_file, &origin) {
        (Some(path), _) => {
            let key = if path.exists() {
                sealing::read_key_file(&path)?
            } else {
                let key = MasterKey::generate()?;
                sealing::write_key_file(&path, &key)?;
                key
            };
            if key.version() == current.version() {
                bail!("the new master key is the current one");
            }
            (MasterKey::sealing_with(key, &current), Some(path), None)
        }
        (None, MasterKeyOrigin::DevelopmentFile(dev)) if single => {
            // Written beside the old one first; swapped in after the commit.
            let mut staged = dev.clone().into_os_string();
            staged.push(".new");
            let staged = PathBuf::from(staged);
            let _ = std::fs::remove_file(&staged);
            let key = MasterKey::generate()?;
            sealing::write_key_file(&staged, &key)?;
            (
                MasterKey::sealing_with(key, &current),
                Some(dev.clone()),
                Some(staged),
            )
        }
        (None, _) => (current, None, None),
    };
    let db = open(global).await?;
    let count = app::clients::rotate_master_key(&db, &ring).await?;
    db.close().await?;
    if let (Some(staged), Some(path)) = (replace_dev_file, &new_path) {
        std::fs::rename(&staged, path)
            .with_context(|| format!("cannot move {} to {}", staged.display(), path.display()))?;
    }
    let next = match &new_path {
        Some(path) => format!("use {} from now on", path.display()),
        None => "every value now opens under the first key alone".into(),
    };
    eprintln!(
        "re-encrypted {count} credential(s) to master key {}; {next}",
        ring.version()
    );
    Ok(())
}
