// rewind/core/atomic_file.cpp — a temporary next to the target, flushed, renamed over it; stale
// temporaries of dead processes removed (the design is in atomic_file.hpp).
#include "atomic_file.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <random>
#include <string_view>
#include <system_error>

#include "error.hpp"

namespace rwd {
// Named, not anonymous: in a unity build this file shares a translation unit with npz.cpp, whose
// anonymous namespace has helpers of the same names.
namespace atomic_file_impl {

namespace fs = std::filesystem;

constexpr std::string_view temp_prefix = ".rwd-tmp-";

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

std::string system_message(int err) { return std::generic_category().message(err); }

/// fsync a file or directory; returns errno, or 0.
int sync_path(const fs::path& p, bool directory) {
  const int fd = ::open(p.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd < 0) return errno;
  const int rc = ::fsync(fd);
  const int err = rc == 0 ? 0 : errno;
  ::close(fd);
  return err;
}

/// A fresh temporary name: `.rwd-tmp-<pid>-<8 hex>`, the hex a per-process random start plus a counter,
/// so no two calls of one process ever share a name, and other processes differ by pid.
std::string temp_name() {
  static const std::uint32_t base = std::random_device{}();
  static std::atomic<std::uint32_t> counter{0};
  const std::uint32_t r = base + counter.fetch_add(1) * 0x9e3779b9u;  // odd step: all 2^32 values before a repeat
  static const char hex[] = "0123456789abcdef";
  std::string name(temp_prefix);
  name += std::to_string(::getpid());
  name += '-';
  for (int shift = 28; shift >= 0; shift -= 4) name += hex[(r >> shift) & 15];
  return name;
}

/// The pid of a name that follows the temporary's pattern exactly, or 0.
pid_t temp_pid(std::string_view name) {
  if (name.substr(0, temp_prefix.size()) != temp_prefix) return 0;
  name.remove_prefix(temp_prefix.size());
  std::uint64_t pid = 0;
  std::size_t i = 0;
  for (; i < name.size() && i < 10 && name[i] >= '0' && name[i] <= '9'; ++i) pid = pid * 10 + (name[i] - '0');
  if (i == 0 || pid == 0 || pid > 0x7fffffff || i >= name.size() || name[i] != '-') return 0;
  name.remove_prefix(i + 1);
  auto is_hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); };
  if (name.size() < 8) return 0;
  for (std::size_t k = 0; k < 8; ++k)
    if (!is_hex(name[k])) return 0;
  name.remove_prefix(8);
  if (name.empty()) return static_cast<pid_t>(pid);
  // libzip's own temporary: the name it was given, '.', and six characters from mkstemp's alphabet.
  if (name.size() != 7 || name[0] != '.') return 0;
  for (std::size_t k = 1; k < 7; ++k) {
    const char c = name[k];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) return 0;
  }
  return static_cast<pid_t>(pid);
}

/// Removes the file on scope exit unless released.
class TempFile {
 public:
  explicit TempFile(fs::path p) : m_path(std::move(p)) {}
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (!m_released) {
      std::error_code ignored;
      fs::remove(m_path, ignored);
    }
  }
  const fs::path& path() const { return m_path; }
  void release() { m_released = true; }

 private:
  fs::path m_path;
  bool m_released = false;
};

}  // namespace atomic_file_impl

std::size_t remove_stale_temporaries(const std::string& directory) {
  namespace fs = std::filesystem;
  std::size_t removed = 0;
  std::error_code ec;
  fs::directory_iterator it(directory, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const pid_t pid = atomic_file_impl::temp_pid(name);
    if (pid == 0 || pid == ::getpid()) continue;
    // ESRCH: no such process. EPERM means it exists (another user's): keep its file.
    if (::kill(pid, 0) == 0 || errno != ESRCH) continue;
    std::error_code remove_ec;
    if (it->is_regular_file(remove_ec) && fs::remove(it->path(), remove_ec)) ++removed;
  }
  return removed;
}

void write_atomically(const std::string& path, const std::string& where,
                      const std::function<void(const std::string& tmp)>& fill) {
  namespace fs = std::filesystem;
  if (path.empty() || !fs::path(path).has_filename()) throw IOError(where + ": not a file path");
  std::error_code ec;
  // A symlink is written through, as open(O_CREAT) would: the file it points to is replaced (or
  // created, where the link dangles), the link stays. Followed link by link — weakly_canonical would
  // take a dangling link for a plain name and replace the link itself with a file — up to Linux's 40.
  fs::path target(path);
  for (int links = 0; fs::is_symlink(fs::symlink_status(target, ec)); ++links) {
    if (links == 40) throw IOError(where + ": too many levels of symbolic links");
    const fs::path to = fs::read_symlink(target, ec);
    if (ec) throw IOError(where + ": cannot read the symbolic link " + atomic_file_impl::quoted(target.string()) + ": " + ec.message());
    target = to.is_absolute() ? to : target.parent_path() / to;
  }
  if (!target.has_filename())
    throw IOError(where + ": the symbolic link points to " + atomic_file_impl::quoted(target.string()) + ", not a file path");
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  if (!fs::is_directory(dir, ec)) throw IOError(where + ": directory " + atomic_file_impl::quoted(dir.string()) + " does not exist");

  // What is there already. Renaming over it would go around what a plain write respects: a FIFO or a
  // device (/dev/null) would be replaced by a file, a read-only file (which np.savez or torch.save
  // could not open for writing) overwritten. Refused by its mode bits, so root is refused too. A
  // directory is left to the rename, which refuses it. A file that stays keeps its permission bits.
  struct stat old;
  const bool exists = ::stat(target.c_str(), &old) == 0;
  if (exists && !S_ISREG(old.st_mode) && !S_ISDIR(old.st_mode))
    throw IOError(where + ": is not a regular file (a FIFO, a device or a socket): not replaced");
  if (exists && S_ISREG(old.st_mode) && ((old.st_mode & 0222) == 0 || ::access(target.c_str(), W_OK) != 0))
    throw IOError(where + ": the file is read-only: not replaced (make it writable to save over it)");
  remove_stale_temporaries(dir.string());

  atomic_file_impl::TempFile tmp(dir / atomic_file_impl::temp_name());
  fill(tmp.path().string());
  if (exists && S_ISREG(old.st_mode) && ::chmod(tmp.path().c_str(), old.st_mode & 07777) != 0) {
    throw IOError(where + ": cannot set the permissions of " + atomic_file_impl::quoted(tmp.path().string()) + ": " +
                  atomic_file_impl::system_message(errno));
  }
  // On disk before it replaces the old file, so a crash leaves the old file or the new, never a torn one.
  if (const int err = atomic_file_impl::sync_path(tmp.path(), false)) {
    throw IOError(where + ": cannot flush " + atomic_file_impl::quoted(tmp.path().string()) + ": " + atomic_file_impl::system_message(err));
  }
  if (::rename(tmp.path().c_str(), target.c_str()) != 0) {
    throw IOError(where + ": cannot replace the file: " + atomic_file_impl::system_message(errno));
  }
  tmp.release();
  atomic_file_impl::sync_path(dir, true);  // best effort: makes the rename itself durable
}

void write_file_atomic(const std::string& path, const std::string& text) {
  write_atomically(path, atomic_file_impl::quoted(path), [&](const std::string& tmp) {
    // O_EXCL: the name is this call's alone; a file already there is not ours to overwrite.
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) throw IOError(atomic_file_impl::quoted(path) + ": cannot create " + atomic_file_impl::quoted(tmp) + ": " + atomic_file_impl::system_message(errno));
    std::size_t done = 0;
    int err = 0;
    while (done < text.size()) {
      const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        err = errno;
        break;
      }
      done += static_cast<std::size_t>(n);
    }
    if (::close(fd) != 0 && err == 0) err = errno;
    if (err != 0) throw IOError(atomic_file_impl::quoted(path) + ": writing failed: " + atomic_file_impl::system_message(err));
  });
}

}  // namespace rwd
