// examples/common/example.hpp — what every example shares, so each program reads as its model:
// command-line flags (--quick, --out, --seed, checked), the closing RESULT line, CSV files, and PNG plots
// drawn by gnuplot (Debian's gnuplot-nox; without it the data and the script are still written).
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <rewind.hpp>

namespace ex {

/// What an example takes beyond the common flags (ex::Args).
struct ArgSpec {
  std::string positional;  // usage of its positional arguments ("[MODEL ...]"); empty: it takes none
  std::vector<std::pair<std::string, std::string>> flags = {};  // flags of its own, each with a value: {"--epochs", "N"}
};

/// An example's main: runs `body` (the program, returning its exit status) and turns an exception
/// nothing caught — the disk filling while a CSV is written, a file that went bad — into its message on
/// stderr and exit status 1, after the stack has unwound (so a half-written file is removed), instead
/// of std::terminate's abort. (fashion under mpirun does without it: there an uncaught exception must
/// end every rank, which World's terminate handler does; unwinding past World would finalize MPI instead.)
template <class Body>
int guard(const char* name, Body&& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    std::cout.flush();
    std::cerr << name << ": " << e.what() << "\n";
    return 1;
  }
}

/// Flags every example takes:
///   --quick       a few batches only (what CI runs), so the program is checked end to end in seconds
///   --out DIR     where CSV and PNG files go (default out/<example>; created with its parents)
///   --seed N      the random seed, 0 to 4294967295 (default 0)
///   --help        the usage line, exit status 0
/// plus the example's own (ArgSpec). `--flag=value` is the same as `--flag value`. Anything else — an
/// unknown flag, a flag without its value, a number that is not a whole number in range, a positional
/// argument to an example that takes none, an --out that cannot be made a writable folder — prints
/// what is wrong and the usage line, and exits with status 2 before any work is done.
struct Args {
  std::string name;
  bool quick = false;
  std::string out;
  std::uint32_t seed = 0;
  std::vector<std::string> rest;  // positional arguments, for the example to interpret
  std::vector<std::pair<std::string, std::string>> values;  // the example's own flags as given, in order

  Args(int argc, char** argv, std::string example_name, ArgSpec spec = {}) : name(std::move(example_name)), m_spec(std::move(spec)) {
    out = "out/" + name;
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      std::optional<std::string> inline_value;  // --flag=value
      if (const std::size_t eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
        inline_value = a.substr(eq + 1);
        a.resize(eq);
      }
      // The value of a flag that takes one: after '=', or the next argument, unless that is a flag
      // (`--out --quick` is a forgotten value, not a folder named "--quick").
      auto value = [&]() -> std::string {
        if (inline_value) return *inline_value;
        if (i + 1 >= argc || std::string(argv[i + 1]).rfind("--", 0) == 0) fail(a + " needs a value");
        return argv[++i];
      };
      if (a == "--quick" && !inline_value) {
        quick = true;
      } else if (a == "--out") {
        out = value();
        if (out.empty()) fail("--out needs a folder, not an empty string");
      } else if (a == "--seed") {
        seed = static_cast<std::uint32_t>(whole("--seed", value(), 0, UINT32_MAX));
      } else if ((a == "--help" || a == "-h") && !inline_value) {
        std::cout << usage() << "\n";
        std::exit(0);
      } else if (own_flag(a)) {
        values.emplace_back(a, value());
      } else if (!a.empty() && a[0] == '-') {
        fail("unknown flag " + std::string(argv[i]));
      } else if (m_spec.positional.empty()) {
        fail("unexpected argument '" + a + "' (" + name + " takes no positional arguments)");
      } else {
        rest.push_back(a);
      }
    }
    // mkdir -p; a path that is a file, or cannot be made or written, is refused before any work.
    std::error_code ec;
    std::filesystem::create_directories(out, ec);
    if (ec) fail("cannot make the output folder --out " + out + ": " + ec.message());
    if (!std::filesystem::is_directory(out, ec)) fail("--out " + out + " is not a folder");
    if (access(out.c_str(), W_OK | X_OK) != 0) fail("cannot write into the output folder --out " + out);
  }

  /// A path inside the output directory.
  std::string path(const std::string& file) const { return out + "/" + file; }

  /// The last value given for one of the example's own flags, or nullopt.
  std::optional<std::string> flag(const std::string& f) const {
    std::optional<std::string> v;
    for (const auto& [k, x] : values)
      if (k == f) v = x;
    return v;
  }

  /// `text` as a whole number in [lo, hi], or exits naming `what` (a flag or key) and the range.
  std::size_t whole(const std::string& what, const std::string& text, std::size_t lo, std::size_t hi) const {
    std::size_t v = 0;
    const char* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, v);  // digits only: no sign, no spaces
    if (text.empty() || ec != std::errc() || ptr != end || v < lo || v > hi)
      fail(what + " takes a whole number from " + std::to_string(lo) + " to " + std::to_string(hi) + ", not '" + text + "'");
    return v;
  }

  /// Says what is wrong with the command line, and the usage, on stderr; exits with status 2.
  [[noreturn]] void fail(const std::string& what) const {
    std::cerr << name << ": " << what << "\n" << usage() << "\n";
    std::exit(2);
  }

  /// The usage line: the common flags, the example's own, its positional arguments.
  std::string usage() const {
    std::string u = "usage: " + name + " [--quick] [--out DIR] [--seed N]";
    for (const auto& [f, v] : m_spec.flags) u += " [" + f + " " + v + "]";
    if (!m_spec.positional.empty()) u += " " + m_spec.positional;
    return u;
  }

 private:
  bool own_flag(const std::string& f) const {
    for (const auto& [k, v] : m_spec.flags)
      if (k == f) return true;
    return false;
  }

  ArgSpec m_spec;
};

/// Seconds since `start`.
inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// Formats a number for RESULT lines and tables (%.4g by default).
inline std::string num(double v, const char* format = "%.4g") {
  char buf[48];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

/// Prints the machine-readable closing line: `RESULT key=value key=value …`.
inline void result(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::cout << "RESULT";
  for (const auto& [k, v] : fields) std::cout << " " << k << "=" << v;
  std::cout << std::endl;
}

/// One line of a plot: y against x (x = 0, 1, … when empty).
struct Series {
  std::string title;
  std::vector<double> y;
  std::vector<double> x = {};
  std::string style = "lines";  // gnuplot's: lines, points, linespoints
};

/// Where gnuplot is, or "" (it is optional: examples still run and write their data without it).
inline std::string gnuplot_path() {
  for (const char* p : {"/usr/bin/gnuplot", "/usr/local/bin/gnuplot"})
    if (access(p, X_OK) == 0) return p;
  return "";
}

/// A string as a gnuplot single-quoted literal ('' is its escaped quote).
inline std::string gp_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

/// Draws `series` into `png` with gnuplot: writes <png>.dat and <png>.gp next to it, then runs gnuplot.
/// Returns false (and says why) when gnuplot is missing or fails; the data files are written anyway.
inline bool plot(const std::string& png, const std::string& title, const std::string& xlabel, const std::string& ylabel,
                 const std::vector<Series>& series, bool log_y = false) {
  const std::string dat = png + ".dat", gp = png + ".gp";
  std::ostringstream data, script;
  for (std::size_t s = 0; s < series.size(); ++s) {
    data << "# " << series[s].title << "\n";
    for (std::size_t i = 0; i < series[s].y.size(); ++i)
      data << (series[s].x.empty() ? static_cast<double>(i) : series[s].x[i]) << " " << series[s].y[i] << "\n";
    data << "\n\n";  // gnuplot's index separator
  }
  rwd::write_file_atomic(dat, data.str());
  script << "set terminal pngcairo size 900,540 noenhanced\nset output " << gp_quote(png) << "\n"
         << "set title " << gp_quote(title) << "\nset xlabel " << gp_quote(xlabel) << "\nset ylabel " << gp_quote(ylabel) << "\n"
         << "set grid\nset key outside right\n" << (log_y ? "set logscale y\n" : "") << "plot ";
  for (std::size_t s = 0; s < series.size(); ++s)
    script << (s ? ", " : "") << gp_quote(dat) << " index " << s << " using 1:2 with " << series[s].style << " title "
           << gp_quote(series[s].title);
  script << "\n";
  rwd::write_file_atomic(gp, script.str());
  const std::string gnuplot = gnuplot_path();
  if (gnuplot.empty()) {
    std::cerr << "plot: gnuplot not found (apt-get install gnuplot-nox); data in " << dat << ", script in " << gp << "\n";
    return false;
  }
  const pid_t pid = fork();
  if (pid == 0) {
    execl(gnuplot.c_str(), "gnuplot", gp.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::cerr << "plot: gnuplot failed on " << gp << "\n";
    return false;
  }
  return true;
}

/// Draws a training history's loss (and val_loss when there is one) per epoch.
inline bool plot_history(const std::string& png, const std::string& title, const rwd::History& h, bool log_y = true) {
  Series loss{"loss", {}, {}, "linespoints"}, val{"val_loss", {}, {}, "linespoints"};
  for (const auto& e : h.epochs) {
    loss.x.push_back(static_cast<double>(e.epoch));
    loss.y.push_back(e.loss);
    if (e.val_loss == e.val_loss) {  // not NaN
      val.x.push_back(static_cast<double>(e.epoch));
      val.y.push_back(e.val_loss);
    }
  }
  std::vector<Series> s{loss};
  if (!val.y.empty()) s.push_back(val);
  return plot(png, title, "epoch", "loss", s, log_y);
}

}  // namespace ex
