// tests/docs/extract_snippets.cpp — turns the ```cpp blocks of the documentation into one C++ file, so
// that a documented snippet that stops compiling (or starts throwing) fails the build or CTest.
//
//   rewind_doc_extract OUT.cpp SOURCE_ROOT README.md docs/tutorial.md ...
//
// Each ```cpp block becomes its own namespace in OUT.cpp, preceded by `#line N "FILE"` so that a
// compiler error names the markdown file and line. The build compiles OUT.cpp as rewind_doc_snippets
// (CMakeLists.txt), and the CTest test doc_snippets runs it: every runnable snippet is called once,
// in document order, and an exception fails the test naming the file and line.
//
// How a block is wrapped is said by an HTML comment (invisible on GitHub) on the line just before the
// fence; without one, a block with `int main(` is a program, anything else a body:
//
//   <!-- snippet: program -->        a whole program, ending with its main(): its #includes go to the
//                                    top of the file, its main() is renamed and called
//   <!-- snippet: body -->           statements: the body of a function `void run()`, run
//   <!-- snippet: decls -->          declarations (functions, classes) at namespace scope, not run
//   <!-- snippet: members -->        member declarations (a method of a class the text describes)
//   <!-- snippet: skip REASON -->    not compiled at all: say why (pseudo-code, another language)
//
// and options after the kind:
//
//   context=NAME    a body or members block is placed in a struct derived from doc::NAME
//                   (tests/docs/snippet_contexts.hpp), whose members are the variables the text
//                   assumes (`seq`, `model`, `gen`, …), made with real values so the snippet runs
//   name=NAME       a decls block's namespace is doc_NAME, so that a later block can use it
//   uses=NAME       the block sees the names of decls block NAME (`using namespace doc_NAME;`)
//   compile-only    a body that is compiled but not run (it needs what a test cannot give: MPI, data)
//
// Only plain ```cpp fences count (```sh, ```python, ```cmake and the rest are left alone).
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Block {
  std::string file;  // as given, relative to the source root
  std::size_t line = 0;  // of the first code line
  std::string code;
  std::string kind = "";  // program, body, decls, members, skip
  std::string context, name, uses;
  bool compile_only = false;
};

/// Says what is wrong and stops the build.
[[noreturn]] void die(const std::string& what) {
  std::cerr << "rewind_doc_extract: " << what << "\n";
  std::exit(1);
}

/// Reads the options of a `<!-- snippet: ... -->` line into `b`.
void parse_marker(const std::string& line, Block& b, const std::string& where) {
  const std::size_t at = line.find("snippet:");
  std::istringstream in(line.substr(at + 8, line.rfind("-->") - at - 8));
  std::string word;
  in >> b.kind;
  if (b.kind != "program" && b.kind != "body" && b.kind != "decls" && b.kind != "members" && b.kind != "skip")
    die(where + ": unknown snippet kind '" + b.kind + "' (program, body, decls, members, skip)");
  if (b.kind == "skip") return;  // the rest is the reason
  while (in >> word) {
    if (word.rfind("context=", 0) == 0) b.context = word.substr(8);
    else if (word.rfind("name=", 0) == 0) b.name = word.substr(5);
    else if (word.rfind("uses=", 0) == 0) b.uses = word.substr(5);
    else if (word == "compile-only") b.compile_only = true;
    else die(where + ": unknown snippet option '" + word + "'");
  }
}

/// The ```cpp blocks of one markdown file, with their markers read.
std::vector<Block> blocks_of(const std::string& root, const std::string& file) {
  std::ifstream in(root + "/" + file);
  if (!in) die("cannot read " + root + "/" + file);
  std::vector<Block> blocks;
  std::string line, previous;
  std::size_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    std::size_t indent = line.find_first_not_of(' ');
    const bool fence = indent != std::string::npos && line.compare(indent, 6, "```cpp") == 0 &&
                       line.find_first_not_of(' ', indent + 6) == std::string::npos;
    if (fence) {
      Block b{file, n + 1, ""};
      if (previous.find("<!--") != std::string::npos && previous.find("snippet:") != std::string::npos)
        parse_marker(previous, b, file + ":" + std::to_string(n - 1));
      while (std::getline(in, line)) {
        ++n;
        const std::size_t i = line.find_first_not_of(' ');
        if (i != std::string::npos && line.compare(i, 3, "```") == 0) break;
        std::size_t strip = 0;  // the fence's indentation (a block inside a list item)
        while (strip < indent && strip < line.size() && line[strip] == ' ') ++strip;
        b.code += line.substr(strip) + "\n";
      }
      if (b.kind.empty()) b.kind = b.code.find("int main(") != std::string::npos ? "program" : "body";
      blocks.push_back(b);
    }
    previous = line;
  }
  return blocks;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) die("usage: rewind_doc_extract OUT.cpp SOURCE_ROOT FILE.md ...");
  const std::string root = argv[2];
  std::vector<Block> blocks;
  for (int i = 3; i < argc; ++i)
    for (Block& b : blocks_of(root, argv[i])) blocks.push_back(std::move(b));

  std::ostringstream top, body, runs;
  top << "// Generated by tests/docs/extract_snippets.cpp from the documentation's ```cpp blocks; do not edit.\n"
      << "#include \"snippet_contexts.hpp\"\n";
  std::size_t k = 0, compiled = 0, run = 0;
  for (const Block& b : blocks) {
    ++k;
    if (b.kind == "skip") continue;
    ++compiled;
    const std::string ns = b.name.empty() ? "doc_" + std::to_string(k) : "doc_" + b.name;
    const std::string loc = "#line " + std::to_string(b.line) + " \"" + b.file + "\"\n";
    std::string code = b.code;
    if (b.kind == "program") {  // #includes to the top, outside every namespace
      std::istringstream lines(b.code);
      std::string l;
      code.clear();
      while (std::getline(lines, l)) {
        if (l.rfind("#include", 0) == 0) {
          top << l << "\n";
          code += "\n";  // keeps the line numbers
        } else {
          code += l + "\n";
        }
      }
    }
    body << "\n// " << b.file << ":" << b.line << " (" << b.kind << ")\nnamespace " << ns << " {\nusing namespace rwd;\n";
    if (!b.uses.empty()) body << "using namespace doc_" << b.uses << ";\n";
    const std::string base = "doc::" + (b.context.empty() ? std::string("Empty") : b.context);
    if (b.kind == "program") {
      // main() becomes snippet_main(), which (unlike main) must return its value: `return 0;` goes
      // before the block's last '}', main's own.
      const std::size_t at = code.find("int main("), close = code.rfind('}');
      if (at == std::string::npos || close == std::string::npos || close < at)
        die(b.file + ":" + std::to_string(b.line) + ": a program block must end with its main()");
      code.replace(close, 1, "return 0; }");
      code.replace(at, 9, "int snippet_main(");
      body << loc << code;
    } else if (b.kind == "decls") {
      body << loc << code;
    } else if (b.kind == "members") {
      body << "struct Snippet : " << base << " {\n" << loc << code << "};\n";
    } else {  // body
      body << "struct Snippet : " << base << " {\n  void run() {\n" << loc << code << "\n  }\n};\n";
    }
    body << "}  // namespace " << ns << "\n";
    if (b.compile_only || b.kind == "decls" || b.kind == "members") continue;
    ++run;
    runs << "  doc::run_one(\"" << b.file << ":" << b.line << "\", [] { "
         << (b.kind == "program" ? ns + "::snippet_main();" : ns + "::Snippet s; s.run();") << " });\n";
  }
  std::ofstream out(argv[1]);
  out << top.str() << body.str() << "\nint main(int argc, char** argv) {\n  doc::enter_work_dir(argc, argv);\n"
      << runs.str() << "  return doc::finish(" << compiled << ");\n}\n";
  if (!out) die(std::string("cannot write ") + argv[1]);
  return 0;
}
