// rewind/core/atomic_file.hpp — the one way rewind replaces a file: write a temporary, flush, rename.
//
//   write_atomically("model.npz", "save_npz: \"model.npz\"", [&](const std::string& tmp) { … create tmp … });
//
// The temporary lives in the target's directory (so the rename is atomic: one file system) under a
// short name of rewind's own, `.rwd-tmp-<pid>-<8 hex digits>`, whatever the target is called: a target
// name of up to 255 bytes (the usual limit of one path component) still has room for it, and for the
// `.XXXXXX` that libzip appends to the temporary of its own that it renames into place. The
// temporary is flushed to disk (fsync) before it is renamed over the target, and the directory after,
// so a crash at any point leaves the old file or the new one, never a torn one; a failure leaves the
// old file as it was and removes the temporary.
//
// What is replaced. A save goes where a plain write would: through a symlink (or a chain of them)
// to the file it points to, created there if the link dangles (the link stays a link), and the new
// file keeps the old one's permission bits (a new file gets 0666 less the umask). It refuses, with
// an IOError before anything is written, what a rename would wrongly go around: a target that is a
// FIFO, a device or a socket (renaming over /dev/null would replace it), and a read-only file — one
// without any write bit, or that access(W_OK) refuses — which np.savez or torch.save could not open
// either (refused by its mode bits, so under root too). The owner of a replaced file is the saving
// process's.
//
// Temporaries left by a crash. A process killed during a save (kill -9, power loss) leaves its
// temporary behind. Every save removes, from the directory it writes into, the files whose names
// follow the pattern above exactly (`.rwd-tmp-<pid>-<8 hex>`, optionally followed by libzip's
// `.` and six letters or digits) and whose process is gone (kill(pid, 0) fails with ESRCH). A
// temporary of a live process (another save under way, in this process or another) is never
// touched, nor is any file that does not follow the pattern. The pid test assumes that the
// processes saving into one directory see the same process ids: two machines writing into one
// network directory, or containers with their own pid namespaces sharing one, could each take the
// other's temporary for stale (the save that loses it fails with an IOError; no target is torn).
#pragma once

#include <cstddef>
#include <functional>
#include <string>

namespace rwd {

/// Replaces `path` atomically: `fill(tmp)` creates and writes the temporary `tmp`, then it is synced and renamed.
/// `where` starts every IOError message (e.g. `save_npz: "model.npz"`).
void write_atomically(const std::string& path, const std::string& where,
                      const std::function<void(const std::string& tmp)>& fill);

/// Writes `text` to `path` atomically (see write_atomically). Throws IOError naming the file.
void write_file_atomic(const std::string& path, const std::string& text);

/// Removes the temporaries in `directory` whose saving process is gone; returns how many (see above).
std::size_t remove_stale_temporaries(const std::string& directory);

}  // namespace rwd
