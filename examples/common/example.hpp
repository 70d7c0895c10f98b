// examples/common/example.hpp — what every example shares, so each program reads as its model:
// command-line flags (--quick, --out, --seed), the closing RESULT line, CSV files, and PNG plots
// drawn by gnuplot (Debian's gnuplot-nox; without it the data and the script are still written).
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <rewind.hpp>

namespace ex {

/// Flags every example takes:
///   --quick       a few batches only (what CI runs), so the program is checked end to end in seconds
///   --out DIR     where CSV and PNG files go (default out/<example>)
///   --seed N      the random seed (default 0)
/// Unknown flags are an error that lists these.
struct Args {
  std::string name;
  bool quick = false;
  std::string out;
  std::uint32_t seed = 0;
  std::vector<std::string> rest;  // positional arguments, for the example to interpret

  Args(int argc, char** argv, std::string example_name, const std::string& usage = "") : name(std::move(example_name)) {
    out = "out/" + name;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--quick") {
        quick = true;
      } else if (a == "--out" && i + 1 < argc) {
        out = argv[++i];
      } else if (a == "--seed" && i + 1 < argc) {
        seed = static_cast<std::uint32_t>(std::stoul(argv[++i]));
      } else if (a == "--help" || a == "-h") {
        std::cout << "usage: " << name << " [--quick] [--out DIR] [--seed N]" << (usage.empty() ? "" : " " + usage) << "\n";
        std::exit(0);
      } else if (!a.empty() && a[0] == '-') {
        std::cerr << name << ": unknown flag " << a << " (flags: --quick, --out DIR, --seed N)\n";
        std::exit(2);
      } else {
        rest.push_back(a);
      }
    }
    std::filesystem::create_directories(out);
  }

  /// A path inside the output directory.
  std::string path(const std::string& file) const { return out + "/" + file; }
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
