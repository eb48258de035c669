// End-to-end tests of the fer-train command line: every test runs the built binary (FERKIT_TRAIN_BIN) on small
// synthetic data sets written into a fresh temporary folder, and checks exit codes, messages and output files.
// Training uses the tiny architecture, one thread and a few epochs, so the whole program runs in seconds.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

#include "model_io.h"

#ifdef FERKIT_TRAIN_BIN  // defined by tests/CMakeLists.txt when the fer-train target exists

extern char** environ;

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const char* const kClasses[7] = {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"};
constexpr int kSide = 48, kPixels = kSide * kSide;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// ---- temporary folders ------------------------------------------------------------------------------------------
fs::path make_temp_dir(const std::string& tag) {
  fs::path p = fs::temp_directory_path() / ("ferkit_test_cli_" + std::to_string(::getpid()) + "_" + tag);
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = make_temp_dir(info ? info->name() : "x");
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// ---- files ------------------------------------------------------------------------------------------------------
std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// A model file as the trainer wrote it; its extra blobs (a checkpoint's state) into *blobs if given.
ferkit::Model load_model_at(const std::string& path, std::vector<ferkit::Blob>* blobs = nullptr) {
  const std::string bytes = read_all(path);
  return ferkit::load_model(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), nullptr, blobs);
}

void write_all(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary);
  f << data;
  ASSERT_TRUE(f.good()) << path;
}

std::vector<std::string> lines_of(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream f(path);
  for (std::string l; std::getline(f, l);) out.push_back(l);
  return out;
}

bool is_png(const std::string& path) {
  const std::string d = read_all(path);
  return d.size() > 8 && d.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0;
}

// ---- running the CLI --------------------------------------------------------------------------------------------
struct RunResult {
  int rc = -1000;  // exit status; -N if killed by signal N
  std::string out, err;
  std::string all() const { return out + err; }
};

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

int decode_status(int status) {
  if (status == -1) return -1000;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return -1000;
}

// Runs a program (argv[0] and its arguments; one thread), capturing stdout and stderr separately.
RunResult run_program(const std::vector<std::string>& argv) {
  ::setenv("OMP_NUM_THREADS", "1", 1);
  static int counter = 0;
  const std::string err_path =
      (fs::temp_directory_path() / ("ferkit_test_cli_stderr_" + std::to_string(::getpid()) + "_" +
                                    std::to_string(counter++)))
          .string();
  std::string cmd = "exec";
  for (const std::string& a : argv) cmd += " " + quote(a);
  cmd += " 2>" + quote(err_path) + " </dev/null";
  RunResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) {
    ADD_FAILURE() << "popen failed: " << cmd;
    return r;
  }
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  r.rc = decode_status(::pclose(p));
  r.err = read_all(err_path);
  std::remove(err_path.c_str());
  return r;
}

// Runs fer-train with args (one thread).
RunResult run_cli(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {FERKIT_TRAIN_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_program(argv);
}

#ifdef FERKIT_MPIEXEC  // Open MPI's mpirun, found by CMake
// Runs `mpirun -np <processes> fer-train args` on this machine, each process with one thread.
std::vector<std::string> mpi_argv(int processes, const std::vector<std::string>& args) {
  ::setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);  // CI and containers run as root, which mpirun refuses by default
  ::setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  // Open MPI leaks its own allocations at exit (from plugins it has unloaded by then, so LeakSanitizer cannot be
  // told which): under the sanitizers, these processes check everything but leaks (the single-process runs check
  // ferkit's).
  const char* asan = std::getenv("ASAN_OPTIONS");
  const std::string asan_options = std::string("ASAN_OPTIONS=") + (asan && *asan ? asan + std::string(":") : "") +
                                   "detect_leaks=0";
  std::vector<std::string> argv = {FERKIT_MPIEXEC, "-np", std::to_string(processes), "--oversubscribe",
                                   "-x", "OMP_NUM_THREADS=1", "-x", asan_options, FERKIT_TRAIN_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}
RunResult run_mpi(int processes, const std::vector<std::string>& args) {
  return run_program(mpi_argv(processes, args));
}
#endif

std::string describe(const RunResult& r) { return "exit " + std::to_string(r.rc) + ", output:\n" + r.all(); }

// Starts a program (argv[0] and its arguments; one thread) in the background, stdout and stderr to log; returns its
// pid (-1 on failure).
pid_t spawn_program(std::vector<std::string> args, const std::string& log) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
  posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  ::setenv("OMP_NUM_THREADS", "1", 1);
  pid_t pid = -1;
  const int spawned = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return spawned == 0 ? pid : -1;
}

// Starts fer-train with args (one thread) in the background, stdout and stderr to log.
pid_t spawn_cli(std::vector<std::string> args, const std::string& log) {
  args.insert(args.begin(), FERKIT_TRAIN_BIN);
  return spawn_program(args, log);
}

// ---- synthetic data ---------------------------------------------------------------------------------------------
// Class c: a dim noisy background with a bright 16x16 block in cell c of the 3x3 grid (easily separable).
std::vector<uint8_t> face(int cls, int sample) {
  std::vector<uint8_t> px(kPixels);
  uint32_t s = static_cast<uint32_t>(cls) * 7919u + static_cast<uint32_t>(sample) * 104729u + 12345u;
  auto next = [&s] {
    s = s * 1664525u + 1013904223u;
    return static_cast<int>(s >> 24);  // 0..255
  };
  const int cx = cls % 3, cy = cls / 3;
  for (int y = 0; y < kSide; ++y)
    for (int x = 0; x < kSide; ++x) {
      const bool block = x / 16 == cx && y / 16 == cy;
      px[y * kSide + x] = static_cast<uint8_t>(block ? 190 + next() % 60 : 20 + next() % 50);
    }
  return px;
}

std::string csv_row(int cls, int sample, const char* usage) {
  std::vector<uint8_t> px = face(cls, sample);
  std::string s = std::to_string(cls) + ",";
  for (int i = 0; i < kPixels; ++i) {
    if (i) s += ' ';
    s += std::to_string(px[i]);
  }
  return s + "," + usage + "\n";
}

// A Kaggle-layout CSV: per class `train` Training rows, `pub` PublicTest rows, `priv` PrivateTest rows.
std::string fer_csv(int train, int pub, int priv) {
  std::string s = "emotion,pixels,Usage\n";
  int sample = 0;
  for (int i = 0; i < train; ++i)
    for (int c = 0; c < 7; ++c) s += csv_row(c, sample++, "Training");
  for (int i = 0; i < pub; ++i)
    for (int c = 0; c < 7; ++c) s += csv_row(c, sample++, "PublicTest");
  for (int i = 0; i < priv; ++i)
    for (int c = 0; c < 7; ++c) s += csv_row(c, sample++, "PrivateTest");
  return s;
}

void write_png(const std::string& path, int cls, int sample) {
  std::vector<uint8_t> px = face(cls, sample);
  ASSERT_NE(stbi_write_png(path.c_str(), kSide, kSide, 1, px.data(), kSide), 0) << path;
}

// The same face as a 96x96 RGB image (predict accepts any size, colour or grey).
void write_color_png(const std::string& path, int cls, int sample) {
  std::vector<uint8_t> px = face(cls, sample), rgb(96 * 96 * 3);
  for (int y = 0; y < 96; ++y)
    for (int x = 0; x < 96; ++x)
      for (int ch = 0; ch < 3; ++ch) rgb[(y * 96 + x) * 3 + ch] = px[(y / 2) * kSide + x / 2];
  ASSERT_NE(stbi_write_png(path.c_str(), 96, 96, 3, rgb.data(), 96 * 3), 0) << path;
}

// root/train/<class>/*.png (`train` per class) and root/test/<class>/*.png (`test` per class).
void write_folder_dataset(const fs::path& root, int train, int test) {
  int sample = 1000;
  for (const char* split : {"train", "test"})
    for (int c = 0; c < 7; ++c) {
      const fs::path dir = root / split / kClasses[c];
      fs::create_directories(dir);
      const int n = std::string(split) == "train" ? train : test;
      for (int i = 0; i < n; ++i) write_png((dir / (std::to_string(i) + ".png")).string(), c, sample++);
    }
}

// ---- checks -----------------------------------------------------------------------------------------------------
// The evaluation folder: metrics.json (accuracy, macro_f1, 7x7 confusion summing to `images`), confusion.csv,
// confusion.png, report.txt.
void check_eval_dir(const std::string& dir, long images) {
  SCOPED_TRACE(dir);
  for (const char* f : {"metrics.json", "confusion.csv", "confusion.png", "report.txt"})
    EXPECT_TRUE(fs::is_regular_file(dir + "/" + f) && fs::file_size(dir + "/" + f) > 0) << f;
  EXPECT_TRUE(is_png(dir + "/confusion.png"));
  json m = json::parse(read_all(dir + "/metrics.json"), nullptr, false);
  ASSERT_FALSE(m.is_discarded()) << "metrics.json does not parse";
  ASSERT_TRUE(m.contains("accuracy") && m["accuracy"].is_number());
  ASSERT_TRUE(m.contains("macro_f1") && m["macro_f1"].is_number());
  EXPECT_GE(m["accuracy"].get<double>(), 0.0);
  EXPECT_LE(m["accuracy"].get<double>(), 1.0);
  EXPECT_GE(m["macro_f1"].get<double>(), 0.0);
  EXPECT_LE(m["macro_f1"].get<double>(), 1.0);
  EXPECT_EQ(m.value("images", -1L), images);
  ASSERT_TRUE(m.contains("confusion") && m["confusion"].is_array());
  const json& cm = m["confusion"];
  ASSERT_EQ(cm.size(), 7u);
  long sum = 0, diag = 0;
  for (size_t i = 0; i < 7; ++i) {
    ASSERT_TRUE(cm[i].is_array());
    ASSERT_EQ(cm[i].size(), 7u);
    for (size_t j = 0; j < 7; ++j) {
      sum += cm[i][j].get<long>();
      if (i == j) diag += cm[i][j].get<long>();
    }
  }
  EXPECT_EQ(sum, images);
  EXPECT_NEAR(m["accuracy"].get<double>(), static_cast<double>(diag) / images, 1e-9);
  EXPECT_TRUE(contains(read_all(dir + "/report.txt"), "accuracy"));
  EXPECT_EQ(lines_of(dir + "/confusion.csv").size(), 8u) << read_all(dir + "/confusion.csv");
}

// A finished training run's output folder.
void check_train_dir(const std::string& dir, int epochs, long test_images) {
  SCOPED_TRACE(dir);
  for (const char* f : {"model.ferkit", "checkpoint.ferkit", "history.csv", "history.json", "curves.png"})
    EXPECT_TRUE(fs::is_regular_file(dir + "/" + f) && fs::file_size(dir + "/" + f) > 0) << f;
  EXPECT_TRUE(is_png(dir + "/curves.png"));
  std::vector<std::string> h = lines_of(dir + "/history.csv");
  ASSERT_EQ(h.size(), static_cast<size_t>(epochs) + 1) << read_all(dir + "/history.csv");
  EXPECT_EQ(h[0].rfind("epoch,", 0), 0u) << h[0];
  for (int e = 1; e <= epochs; ++e) EXPECT_EQ(h[e].rfind(std::to_string(e) + ",", 0), 0u) << h[e];
  json hj = json::parse(read_all(dir + "/history.json"), nullptr, false);
  ASSERT_FALSE(hj.is_discarded());
  ASSERT_TRUE(hj.is_array());
  EXPECT_EQ(hj.size(), static_cast<size_t>(epochs));
  check_eval_dir(dir + "/eval-private", test_images);
  // Atomic writes leave no temporary files behind.
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_FALSE(contains(e.path().filename().string(), ".tmp.")) << e.path();
}

// The probabilities printed by `predict` (text form) for one line: name=value for every class.
std::vector<double> parse_text_probs(const std::string& line) {
  std::vector<double> p;
  for (const char* name : kClasses) {
    const std::string key = std::string(" ") + name + "=";
    const size_t at = line.find(key);
    if (at == std::string::npos) return {};
    p.push_back(std::strtod(line.c_str() + at + key.size(), nullptr));
  }
  return p;
}

// Common training options: tiny architecture, one thread, fixed seed.
std::vector<std::string> train_args(const std::string& data, const std::string& out, int epochs) {
  return {"train", "--data", data, "--arch", "tiny", "--epochs", std::to_string(epochs), "--batch", "16",
          "--seed", "7", "--threads", "1", "--out", out};
}

std::vector<std::string> plus(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// ---- the shared runs: one training on the CSV, one on the folder layout -----------------------------------------
constexpr int kCsvTrain = 8, kCsvPublic = 2, kCsvPrivate = 3;  // per class
constexpr int kFolderTrain = 4, kFolderTest = 2;                // per class
constexpr int kCsvEpochs = 3, kFolderEpochs = 2;

class Cli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = make_temp_dir("shared");
    csv_ = (root_ / "fer.csv").string();
    write_all(csv_, fer_csv(kCsvTrain, kCsvPublic, kCsvPrivate));
    folder_ = (root_ / "faces").string();
    write_folder_dataset(folder_, kFolderTrain, kFolderTest);
    png_ = (root_ / "happy.png").string();
    write_png(png_, 3, 5000);
    color_png_ = (root_ / "surprise_rgb.png").string();
    write_color_png(color_png_, 5, 5001);
    csv_run_ = (root_ / "run-csv").string();
    folder_run_ = (root_ / "run-folder").string();
    csv_train_ = run_cli(train_args(csv_, csv_run_, kCsvEpochs));
    folder_train_ = run_cli(train_args(folder_, folder_run_, kFolderEpochs));
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    if (!std::getenv("FERKIT_TEST_KEEP")) fs::remove_all(root_, ec);  // keep it to debug a failure
  }
  void SetUp() override {
    ASSERT_EQ(csv_train_.rc, 0) << describe(csv_train_);
    ASSERT_EQ(folder_train_.rc, 0) << describe(folder_train_);
  }
  static std::string model() { return csv_run_ + "/model.ferkit"; }
  // Two training output folders hold the same model: identical predictions on the test images and the same
  // PrivateTest confusion matrix.
  static void expect_same_model(const std::string& a_dir, const std::string& b_dir) {
    RunResult a = run_cli({"predict", "--json", "--model", a_dir + "/model.ferkit", png_, color_png_});
    RunResult b = run_cli({"predict", "--json", "--model", b_dir + "/model.ferkit", png_, color_png_});
    ASSERT_EQ(a.rc, 0) << describe(a);
    ASSERT_EQ(b.rc, 0) << describe(b);
    EXPECT_EQ(json::parse(a.out), json::parse(b.out));
    EXPECT_EQ(read_all(a_dir + "/eval-private/confusion.csv"), read_all(b_dir + "/eval-private/confusion.csv"));
  }

  static inline fs::path root_;
  static inline std::string csv_, folder_, png_, color_png_, csv_run_, folder_run_;
  static inline RunResult csv_train_, folder_train_;
};

// ---- tests ------------------------------------------------------------------------------------------------------
TEST(CliBasics, HelpListsSubcommands) {
  RunResult r = run_cli({"--help"});
  EXPECT_EQ(r.rc, 0) << describe(r);
  for (const char* sub : {"train", "eval", "predict", "info", "plot"}) EXPECT_TRUE(contains(r.all(), sub)) << sub;
  RunResult none = run_cli({});
  EXPECT_NE(none.rc, 0) << "no subcommand must fail";
  EXPECT_GT(none.rc, 0) << describe(none);
}

TEST_F(Cli, TrainOnCsvWritesAllOutputs) {
  check_train_dir(csv_run_, kCsvEpochs, 7 * kCsvPrivate);
  check_eval_dir(csv_run_ + "/eval-public", 7 * kCsvPublic);
  const std::string rows = std::to_string(7 * (kCsvTrain + kCsvPublic + kCsvPrivate));
  EXPECT_TRUE(contains(csv_train_.err, rows + " read, " + rows + " kept, 0 skipped")) << csv_train_.err;
  EXPECT_TRUE(contains(csv_train_.out, "PrivateTest")) << csv_train_.out;
  EXPECT_TRUE(contains(csv_train_.err, "model saved to")) << csv_train_.err;
}

// --bf16: the convolutions train with bf16 dot products where the build has oneDNN (the model file says which), and
// the run still learns what the float32 run learns (its history within a few points); without oneDNN it is refused.
TEST_F(Cli, TrainWithBf16ConvolutionsRecordsItAndLearns) {
  TempDir tmp;
  const std::string out = tmp / "bf16";
  RunResult r = run_cli(plus(train_args(csv_, out, kCsvEpochs), {"--bf16"}));
#ifdef FERKIT_DNNL
  ASSERT_EQ(r.rc, 0) << describe(r);
  check_train_dir(out, kCsvEpochs, 7 * kCsvPrivate);
  json meta, base;
  const std::string bytes = read_all(out + "/model.ferkit"), base_bytes = read_all(csv_run_ + "/model.ferkit");
  ferkit::load_model(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), &meta);
  ferkit::load_model(reinterpret_cast<const uint8_t*>(base_bytes.data()), base_bytes.size(), &base);
  EXPECT_EQ(meta.value("convolutions", ""), "bf16");
  EXPECT_EQ(base.value("convolutions", ""), "float32");
  const json h = json::parse(read_all(out + "/history.json")), h0 = json::parse(read_all(csv_run_ + "/history.json"));
  ASSERT_EQ(h.size(), h0.size());
  EXPECT_NEAR(h.back()["val_acc"].get<double>(), h0.back()["val_acc"].get<double>(), 0.1) << h.dump() << h0.dump();
#else
  EXPECT_EQ(r.rc, 1) << describe(r);
  EXPECT_TRUE(contains(r.err, "--bf16: this build has no oneDNN")) << r.err;
#endif
}

TEST_F(Cli, TrainOnFolderLayoutWritesAllOutputs) {
  // test/ is both the public and the private split when there is no val/.
  check_train_dir(folder_run_, kFolderEpochs, 7 * kFolderTest);
  check_eval_dir(folder_run_ + "/eval-public", 7 * kFolderTest);
  EXPECT_TRUE(contains(folder_train_.err, std::to_string(7 * (kFolderTrain + kFolderTest)) + " read, " +
                                              std::to_string(7 * (kFolderTrain + kFolderTest)) + " kept, 0 skipped"))
      << folder_train_.err;
}

TEST_F(Cli, EvalWritesOutputsAndPrintsAccuracy) {
  TempDir tmp;
  RunResult r = run_cli({"eval", "--model", model(), "--data", csv_, "--threads", "1", "--out", tmp / "priv"});
  ASSERT_EQ(r.rc, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "accuracy")) << r.out;
  EXPECT_TRUE(contains(r.out, "on private")) << r.out;
  check_eval_dir(tmp / "priv", 7 * kCsvPrivate);
  // Same weights, same split: the same confusion matrix as the training run's final evaluation.
  json a = json::parse(read_all(tmp / "priv/metrics.json"));
  json b = json::parse(read_all(csv_run_ + "/eval-private/metrics.json"));
  EXPECT_EQ(a["confusion"], b["confusion"]);
  EXPECT_EQ(a.value("split", ""), "private");

  RunResult pub = run_cli({"eval", "--model", model(), "--data", csv_, "--split", "public", "--out", tmp / "pub"});
  ASSERT_EQ(pub.rc, 0) << describe(pub);
  EXPECT_TRUE(contains(pub.out, "accuracy")) << pub.out;
  EXPECT_TRUE(contains(pub.out, "on public")) << pub.out;
  check_eval_dir(tmp / "pub", 7 * kCsvPublic);
  EXPECT_EQ(json::parse(read_all(tmp / "pub/metrics.json")).value("split", ""), "public");

  // The folder layout works for eval too, and --split must be one of the known names.
  RunResult folder = run_cli({"eval", "--model", folder_run_ + "/model.ferkit", "--data", folder_});
  EXPECT_EQ(folder.rc, 0) << describe(folder);
  EXPECT_TRUE(contains(folder.out, "accuracy")) << folder.out;
  RunResult bad = run_cli({"eval", "--model", model(), "--data", csv_, "--split", "bogus"});
  EXPECT_GT(bad.rc, 0) << describe(bad);
  // Ten-crop averaging is recorded as such; it and flip averaging are one or the other.
  RunResult crops = run_cli({"eval", "--model", model(), "--data", csv_, "--ten-crop", "--out", tmp / "crops"});
  ASSERT_EQ(crops.rc, 0) << describe(crops);
  EXPECT_TRUE(contains(crops.out, "ten-crop")) << crops.out;
  EXPECT_TRUE(json::parse(read_all(tmp / "crops/metrics.json")).value("ten_crop", false));
  RunResult both = run_cli({"eval", "--model", model(), "--data", csv_, "--ten-crop", "--tta"});
  EXPECT_GT(both.rc, 0) << describe(both);
  EXPECT_TRUE(contains(both.err, "--ten-crop")) << both.err;

  // Several models: an ensemble of their mean probabilities. A model with itself is the model; with another
  // (of another architecture) it runs and records both files.
  RunResult twice = run_cli({"eval", "--model", model(), model(), "--data", csv_, "--out", tmp / "twice"});
  ASSERT_EQ(twice.rc, 0) << describe(twice);
  EXPECT_TRUE(contains(twice.out, "ensemble of 2 models on private")) << twice.out;
  json t = json::parse(read_all(tmp / "twice/metrics.json"));
  EXPECT_EQ(t["confusion"], a["confusion"]);
  EXPECT_EQ(t["model"].size(), 2u);
  RunResult mixed = run_cli({"eval", "--model", model(), folder_run_ + "/model.ferkit", "--data", csv_});
  EXPECT_EQ(mixed.rc, 0) << describe(mixed);
}

TEST_F(Cli, PredictPrintsClassProbabilities) {
  RunResult r = run_cli({"predict", "--model", model(), png_, color_png_});
  ASSERT_EQ(r.rc, 0) << describe(r);
  std::vector<std::string> lines;
  std::istringstream in(r.out);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) lines.push_back(l);
  ASSERT_EQ(lines.size(), 2u) << r.out;
  for (size_t i = 0; i < 2; ++i) {
    SCOPED_TRACE(lines[i]);
    EXPECT_EQ(lines[i].rfind((i == 0 ? png_ : color_png_) + ": ", 0), 0u);
    std::vector<double> p = parse_text_probs(lines[i]);
    ASSERT_EQ(p.size(), 7u) << "every class name must be printed with its probability";
    double sum = 0;
    for (double v : p) {
      EXPECT_GE(v, 0.0);
      EXPECT_LE(v, 1.0);
      sum += v;
    }
    EXPECT_NEAR(sum, 1.0, 2e-3);
    const int best = static_cast<int>(std::max_element(p.begin(), p.end()) - p.begin());
    EXPECT_TRUE(contains(lines[i], std::string(": ") + kClasses[best] + " (")) << "label is not the argmax";
  }
}

TEST_F(Cli, DetectWithTtaAgreesWithPredictOnItsCrops) {
  // `detect --tta` classifies each face with its mirror image, as the page does for a still image: the same
  // probabilities as `predict --tta` on the crop it writes, and not the plain ones.
  const std::string photo = "/usr/share/doc/opencv-doc/examples/data/messi5.jpg";
  if (!fs::exists(photo)) GTEST_SKIP() << photo << " missing (Debian package opencv-doc)";
  TempDir tmp;
  RunResult plain = run_cli({"detect", "--json", "--model", model(), photo});
  RunResult both = run_cli({"detect", "--json", "--tta", "--model", model(), "--crops", tmp / "crops", photo});
  ASSERT_EQ(plain.rc, 0) << describe(plain);
  ASSERT_EQ(both.rc, 0) << describe(both);
  const json p = json::parse(plain.out)[0]["faces"], b = json::parse(both.out)[0]["faces"];
  ASSERT_GE(b.size(), 1u);
  ASSERT_EQ(p.size(), b.size());
  const std::string crop = tmp / "crops/messi5.jpg.face1.png";
  RunResult pred = run_cli({"predict", "--json", "--tta", "--model", model(), crop});
  ASSERT_EQ(pred.rc, 0) << describe(pred);
  double moved = 0;
  for (const char* k : kClasses) {
    EXPECT_NEAR(b[0]["probabilities"][k].get<double>(),
                json::parse(pred.out)[0]["probabilities"][k].get<double>(), 1e-5) << k;
    moved = std::max(moved, std::fabs(b[0]["probabilities"][k].get<double>() - p[0]["probabilities"][k].get<double>()));
  }
  EXPECT_GT(moved, 1e-6) << "--tta changed nothing";
}

TEST_F(Cli, ExplainWritesAMapPerFaceAndClass) {
  // `explain` on a photo: a PNG per face named by method and class, and with --json each face's map (48x48 values
  // in [0, 1], the largest 1) for the predicted class, or for --class; its label and probabilities are detect's.
  const std::string photo = "/usr/share/doc/opencv-doc/examples/data/messi5.jpg";
  if (!fs::exists(photo)) GTEST_SKIP() << photo << " missing (Debian package opencv-doc)";
  TempDir tmp;
  RunResult det = run_cli({"detect", "--json", "--model", model(), photo});
  RunResult r = run_cli({"explain", "--json", "--model", model(), "--out", tmp / "maps", photo});
  ASSERT_EQ(det.rc, 0) << describe(det);
  ASSERT_EQ(r.rc, 0) << describe(r);
  const json d = json::parse(det.out)[0]["faces"], e = json::parse(r.out)[0]["faces"];
  ASSERT_GE(e.size(), 1u);
  ASSERT_EQ(e.size(), d.size());
  for (size_t i = 0; i < e.size(); ++i) {
    EXPECT_EQ(e[i]["label"], d[i]["label"]);
    EXPECT_EQ(e[i]["class"], d[i]["label"]) << "the predicted class is explained by default";
    EXPECT_EQ(e[i]["method"], "gradcam");
    const std::vector<float> map = e[i]["map"].get<std::vector<float>>();
    ASSERT_EQ(map.size(), 2304u);
    EXPECT_EQ(*std::max_element(map.begin(), map.end()), 1.0f);
    EXPECT_GE(*std::min_element(map.begin(), map.end()), 0.0f);
    const std::string png = e[i]["png"].get<std::string>();
    EXPECT_EQ(png, tmp / "maps" + "/messi5.jpg.face" + std::to_string(i + 1) + ".gradcam-" +
                       d[i]["label"].get<std::string>() + ".png");
    EXPECT_TRUE(fs::exists(png)) << png;
  }
  // Another class and method; crops given as images.
  RunResult sad = run_cli({"explain", "--json", "--model", model(), "--out", tmp / "sad", "--method", "smoothgrad",
                           "--class", "sad", "--face-crops", png_});
  ASSERT_EQ(sad.rc, 0) << describe(sad);
  const json s = json::parse(sad.out)[0]["faces"];
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0]["class"], "sad");
  EXPECT_TRUE(fs::exists(tmp / ("sad/" + fs::path(png_).filename().string() + ".smoothgrad-sad.png")));
  // By index too; a class that does not exist is refused, naming the choices.
  RunResult four = run_cli({"explain", "--json", "--model", model(), "--out", tmp / "four", "--class", "4",
                            "--face-crops", png_});
  ASSERT_EQ(four.rc, 0) << describe(four);
  EXPECT_EQ(json::parse(four.out)[0]["faces"][0]["class"], "sad");
  RunResult bad = run_cli({"explain", "--model", model(), "--out", tmp / "bad", "--class", "bored", png_});
  EXPECT_EQ(bad.rc, 1);
  EXPECT_NE(bad.err.find("--class: expected one of angry, disgust"), std::string::npos) << bad.err;
  EXPECT_NE(run_cli({"explain", "--model", model(), "--out", tmp / "bad", "--method", "lime", png_}).rc, 0);
}

TEST_F(Cli, PredictJsonLabelIsArgmax) {
  RunResult r = run_cli({"predict", "--model", model(), "--json", png_, color_png_});
  ASSERT_EQ(r.rc, 0) << describe(r);
  json j = json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << "stdout is not JSON:\n" << r.out;
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0].value("file", ""), png_);
  EXPECT_EQ(j[1].value("file", ""), color_png_);
  for (const json& e : j) {
    ASSERT_TRUE(e.contains("probabilities") && e["probabilities"].is_object());
    ASSERT_EQ(e["probabilities"].size(), 7u);
    double sum = 0, best_p = -1;
    std::string best;
    for (const char* name : kClasses) {
      ASSERT_TRUE(e["probabilities"].contains(name)) << name;
      const double v = e["probabilities"][name].get<double>();
      sum += v;
      if (v > best_p) best_p = v, best = name;
    }
    EXPECT_NEAR(sum, 1.0, 1e-4);
    EXPECT_EQ(e.value("label", ""), best);
  }
}

TEST_F(Cli, PredictCorruptImageFailsNamingTheFile) {
  TempDir tmp;
  const std::string bad = tmp / "broken.png";
  write_all(bad, std::string("\x89PNG\r\n\x1a\nthis is not really a png image", 38));
  RunResult r = run_cli({"predict", "--model", model(), bad});
  EXPECT_EQ(r.rc, 1) << describe(r);
  EXPECT_TRUE(contains(r.err, bad)) << r.err;
  // A good image next to the bad one is still classified, but the exit status reports the failure.
  RunResult mixed = run_cli({"predict", "--model", model(), png_, bad});
  EXPECT_EQ(mixed.rc, 1) << describe(mixed);
  EXPECT_TRUE(contains(mixed.out, png_ + ": ")) << mixed.out;
  EXPECT_TRUE(contains(mixed.err, bad)) << mixed.err;
  RunResult missing = run_cli({"predict", "--model", model(), tmp / "nope.png"});
  EXPECT_EQ(missing.rc, 1) << describe(missing);
  EXPECT_TRUE(contains(missing.err, tmp / "nope.png")) << missing.err;
}

TEST_F(Cli, InfoPrintsArchitecture) {
  RunResult r = run_cli({"info", "--model", model()});
  ASSERT_EQ(r.rc, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "architecture:")) << r.out;
  EXPECT_TRUE(contains(r.out, "input 48 48 1")) << r.out;
  EXPECT_TRUE(contains(r.out, "conv 8")) << r.out;
  EXPECT_TRUE(contains(r.out, "softmax")) << r.out;
  EXPECT_TRUE(contains(r.out, "parameters:")) << r.out;
  for (const char* name : kClasses) EXPECT_TRUE(contains(r.out, name)) << name;
  EXPECT_TRUE(contains(r.out, "\"epochs_run\": 3")) << r.out;
}

TEST_F(Cli, SoftTargetsFromATeacherFerPlusOrAFile) {
  TempDir tmp;
  RunResult r = run_cli(plus(train_args(csv_, tmp / "kd", 1), {"--teacher", model(), "--teacher-weight", "0.7"}));
  ASSERT_EQ(r.rc, 0) << describe(r);
  EXPECT_TRUE(contains(r.err, "soft targets: 0.70 x the flip-averaged predictions of " + model() + " on")) << r.err;
  EXPECT_TRUE(fs::exists(tmp / "kd/model.ferkit"));
  // Several teachers: an ensemble, the mean of their predictions.
  const std::string other = folder_run_ + "/model.ferkit";
  RunResult two = run_cli(plus(train_args(csv_, tmp / "kd2", 1), {"--teacher", model(), other}));
  ASSERT_EQ(two.rc, 0) << describe(two);
  EXPECT_TRUE(contains(two.err, "predictions of " + model() + " + " + other + " on")) << two.err;
  // FER+ votes must be row-aligned with the training set: a file with the wrong number of Training rows is refused.
  const std::string plus_csv = tmp / "fer2013new.csv";
  write_all(plus_csv, "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"
                      "Training,fer0000000.png,4,0,0,1,3,2,0,0,0,0\n");
  RunResult bad = run_cli(plus(train_args(csv_, tmp / "fp", 1), {"--ferplus", plus_csv}));
  EXPECT_NE(bad.rc, 0);
  EXPECT_TRUE(contains(bad.err, plus_csv + ": 1 Training rows, but the Training set has")) << bad.err;
  // --soft-targets: one row per training image; the run says what it blended, and refuses a short file.
  std::string soft = "angry,disgust,fear,happy,sad,surprise,neutral\n";
  for (int i = 0; i < 7 * kCsvTrain; ++i) soft += "0.2,0,0,0.5,0,0,0.3\n";
  const std::string soft_csv = tmp / "soft.csv";
  write_all(soft_csv, soft);
  RunResult st =
      run_cli(plus(train_args(csv_, tmp / "st", 1), {"--soft-targets", soft_csv, "--soft-targets-weight", "0.4"}));
  ASSERT_EQ(st.rc, 0) << describe(st);
  EXPECT_TRUE(contains(st.err, "soft targets: 0.40 x " + soft_csv + " + 0.60 x the previous target")) << st.err;
  write_all(soft_csv, "angry,disgust,fear,happy,sad,surprise,neutral\n0.2,0,0,0.5,0,0,0.3\n");
  RunResult short_file = run_cli(plus(train_args(csv_, tmp / "st2", 1), {"--soft-targets", soft_csv}));
  EXPECT_NE(short_file.rc, 0);
  EXPECT_TRUE(contains(short_file.err, soft_csv + ": 1 Training rows, but the Training set has")) << short_file.err;
}

TEST_F(Cli, ClassWeightsAreNamedOrListedAndPrinted) {
  TempDir tmp;
  // The fixture's CSV has the same number of training images per class: sqrt-balanced weights are all 1.
  RunResult r = run_cli(plus(train_args(csv_, tmp / "w", 1), {"--class-weights", "sqrt"}));
  ASSERT_EQ(r.rc, 0) << describe(r);
  EXPECT_TRUE(contains(r.err, "class weights: angry 1.000 disgust 1.000 fear 1.000")) << r.err;
  RunResult listed = run_cli(plus(train_args(csv_, tmp / "l", 1), {"--class-weights", "1,2,1,1,1,1,0.5"}));
  ASSERT_EQ(listed.rc, 0) << describe(listed);
  EXPECT_TRUE(contains(listed.err, "disgust 2.000") && contains(listed.err, "neutral 0.500")) << listed.err;
  RunResult bad = run_cli(plus(train_args(csv_, tmp / "b", 1), {"--class-weights", "sqr"}));
  EXPECT_NE(bad.rc, 0);
  EXPECT_TRUE(contains(bad.err, "--class-weights: expected a non-negative number, got 'sqr'")) << bad.err;
}

TEST_F(Cli, InitStartsFromAModelsWeights) {
  TempDir tmp;
  // A step of 1e-30 leaves every trained weight as it was, so the run's model must hold the --init model's
  // weights exactly; only batch norm's running statistics (not trained by the optimizer) move.
  const std::vector<std::string> still = {"--lr", "1e-30", "--no-augment"};
  RunResult r = run_cli(plus(plus(train_args(csv_, tmp / "warm", 1), still), {"--init", model()}));
  ASSERT_EQ(r.rc, 0) << describe(r);
  EXPECT_TRUE(contains(r.err, "initialized from " + model())) << r.err;
  const ferkit::Model base = load_model_at(model()), warm = load_model_at(tmp / "warm/model.ferkit");
  ASSERT_EQ(base.tensors.size(), warm.tensors.size());
  size_t compared = 0;
  for (const auto& t : base.tensors) {
    if (!t.trainable) continue;
    for (size_t i = t.offset; i < t.offset + t.size; ++i, ++compared)
      ASSERT_EQ(base.params[i], warm.params[i]) << t.name << " [" << i - t.offset << "]";
  }
  EXPECT_GT(compared, 1000u);
  // Without --init the same run starts from a fresh initialization.
  RunResult cold = run_cli(plus(train_args(csv_, tmp / "cold", 1), still));
  ASSERT_EQ(cold.rc, 0) << describe(cold);
  const ferkit::Model fresh = load_model_at(tmp / "cold/model.ferkit");
  EXPECT_NE(fresh.params[base.tensors[0].offset], base.params[base.tensors[0].offset]);
  // A model whose layers differ from --arch is refused, naming the first tensor that does not match.
  RunResult bad = run_cli({"train", "--data", csv_, "--arch", "seed", "--epochs", "1", "--threads", "1", "--out",
                           tmp / "bad", "--init", model()});
  EXPECT_NE(bad.rc, 0);
  EXPECT_TRUE(contains(bad.err, model() + ": --init model does not match --arch at parameter tensor 0")) << bad.err;
  EXPECT_FALSE(fs::exists(tmp / "bad/model.ferkit"));
}

// --init into an architecture with the same layers and more units widens the model (core's widen): the run
// says which layers grew, and the original units keep their weights (a step of 1e-30 leaves them; no noise).
TEST_F(Cli, InitWidensIntoAWiderArchitecture) {
  TempDir tmp;
  const std::string spec = tmp / "wide.spec";
  write_all(spec, "input 48 48 1\nconv 8 3 1 same\nrelu\nmaxpool 4\nconv 24 3 1 same\nbn\nrelu\nmaxpool 4\n"
                  "flatten\ndense 7\nsoftmax\n");
  auto wide_args = [&](const std::string& out) {  // train_args with this --arch instead of tiny
    std::vector<std::string> args = train_args(csv_, out, 1);
    args[4] = spec;
    return plus(args, {"--init", model()});
  };
  RunResult r = run_cli(plus(wide_args(tmp / "wide"), {"--init-noise", "0", "--lr", "1e-30", "--no-augment"}));
  ASSERT_EQ(r.rc, 0) << describe(r);
  EXPECT_TRUE(contains(r.err, "widened " + model()) && contains(r.err, "l3 conv 16 -> 24")) << r.err;
  const ferkit::Model base = load_model_at(model()), wide = load_model_at(tmp / "wide/model.ferkit");
  const ferkit::LayerPlan &b = base.layers[3], &w = wide.layers[3];
  for (int row = 0; row < b.geom.patch(); ++row)
    for (int u = 0; u < 16; ++u) ASSERT_EQ(wide.params[w.w + row * 24 + u], base.params[b.w + row * 16 + u]);
  // Fewer units than the model has: refused, and the reason is given.
  write_all(spec, "input 48 48 1\nconv 8 3 1 same\nrelu\nmaxpool 4\nconv 8 3 1 same\nbn\nrelu\nmaxpool 4\n"
                  "flatten\ndense 7\nsoftmax\n");
  RunResult narrow = run_cli(wide_args(tmp / "narrow"));
  EXPECT_NE(narrow.rc, 0);
  EXPECT_TRUE(contains(narrow.err, "cannot widen: layer 4 (conv) has 8 units, fewer than 16")) << narrow.err;
}

TEST_F(Cli, EmaSavesTheAveragedWeights) {
  TempDir tmp;
  // With --no-restore-best the saved model is the last state of the average, which the checkpoint also holds
  // (blob 'ema.params') next to the raw weights it continues from.
  RunResult r = run_cli(plus(train_args(csv_, tmp / "ema", 2), {"--ema", "0.9", "--no-restore-best"}));
  ASSERT_EQ(r.rc, 0) << describe(r);
  std::vector<ferkit::Blob> blobs;
  const ferkit::Model model = load_model_at(tmp / "ema/model.ferkit");
  const ferkit::Model raw = load_model_at(tmp / "ema/checkpoint.ferkit", &blobs);
  const ferkit::Blob* ema = nullptr;
  for (const auto& b : blobs)
    if (b.name == "ema.params") ema = &b;
  ASSERT_NE(ema, nullptr) << "the checkpoint has no 'ema.params'";
  EXPECT_EQ(model.params, ema->data);
  EXPECT_NE(model.params, raw.params);
  RunResult bad = run_cli(plus(train_args(csv_, tmp / "bad", 1), {"--ema", "1.5"}));
  EXPECT_NE(bad.rc, 0);
  EXPECT_TRUE(contains(bad.err, "--ema")) << bad.err;
}

// `train --cutmix` trains (its effect on the batch is tested in core), and is refused without augmentation.
TEST_F(Cli, CutMixTrainsAndNeedsAugmentation) {
  TempDir tmp;
  RunResult r = run_cli(plus(train_args(csv_, tmp / "cm", 1), {"--cutmix", "0.5"}));
  ASSERT_EQ(r.rc, 0) << describe(r);
  EXPECT_TRUE(fs::exists(tmp / "cm/model.ferkit"));
  RunResult bad = run_cli(plus(train_args(csv_, tmp / "bad", 1), {"--cutmix", "0.5", "--no-augment"}));
  EXPECT_NE(bad.rc, 0);
  EXPECT_TRUE(contains(bad.err, "--cutmix")) << bad.err;
  RunResult range = run_cli(plus(train_args(csv_, tmp / "range", 1), {"--cutmix", "1.5"}));
  EXPECT_NE(range.rc, 0);
  RunResult mix = run_cli(plus(train_args(csv_, tmp / "mu", 1), {"--mixup", "0.5", "--mixup-alpha", "0.4"}));
  ASSERT_EQ(mix.rc, 0) << describe(mix);
  EXPECT_TRUE(fs::exists(tmp / "mu/model.ferkit"));
  RunResult bad_mix = run_cli(plus(train_args(csv_, tmp / "badmu", 1), {"--mixup", "0.5", "--no-augment"}));
  EXPECT_NE(bad_mix.rc, 0);
  EXPECT_TRUE(contains(bad_mix.err, "--mixup")) << bad_mix.err;
}

// `train --recalibrate-bn` ends with the exact batch-norm statistics of the training images; `recalibrate` does
// the same to a saved model: the same statistics from the same weights, and nothing else changed.
TEST_F(Cli, RecalibrateSetsBatchNormStatisticsFromTheTrainingImages) {
  TempDir tmp;
  RunResult with = run_cli(plus(train_args(csv_, tmp / "with", 1), {"--recalibrate-bn"}));
  ASSERT_EQ(with.rc, 0) << describe(with);
  EXPECT_TRUE(contains(with.err, "batch norm recalibrated on 56 training images")) << with.err;
  RunResult without = run_cli(train_args(csv_, tmp / "without", 1));
  ASSERT_EQ(without.rc, 0) << describe(without);
  RunResult r = run_cli({"recalibrate", "--model", tmp / "without/model.ferkit", "--data", csv_, "--out",
                         tmp / "recal.ferkit", "--threads", "1"});
  ASSERT_EQ(r.rc, 0) << describe(r);
  const ferkit::Model trained = load_model_at(tmp / "without/model.ferkit");
  const ferkit::Model recal = load_model_at(tmp / "recal.ferkit"), direct = load_model_at(tmp / "with/model.ferkit");
  size_t stats = 0, moved = 0;
  for (const auto& t : trained.tensors)
    for (size_t i = t.offset; i < t.offset + t.size; ++i) {
      if (t.trainable) {
        ASSERT_EQ(recal.params[i], trained.params[i]) << t.name;
        continue;
      }
      ++stats;
      moved += recal.params[i] != trained.params[i];
      EXPECT_NEAR(recal.params[i], direct.params[i], 1e-5 * (1 + std::fabs(direct.params[i]))) << t.name;
    }
  EXPECT_EQ(stats, 32u);  // tiny: one batch norm over 16 channels, mean and variance
  EXPECT_EQ(moved, stats);
  RunResult info = run_cli({"info", "--model", tmp / "recal.ferkit"});
  EXPECT_TRUE(contains(info.out, "\"bn_recalibrated\"") && !contains(info.out, "\"eval\"")) << info.out;
  RunResult bad = run_cli({"recalibrate", "--model", model(), "--data", tmp / "none.csv", "--out", tmp / "x.ferkit"});
  EXPECT_NE(bad.rc, 0);
  EXPECT_TRUE(contains(bad.err, tmp / "none.csv")) << bad.err;
  EXPECT_FALSE(fs::exists(tmp / "x.ferkit"));
}

// `average` writes the mean of the models' trained weights with batch norm recalibrated for the average (as
// `recalibrate` would), and refuses fewer than two models, another architecture, or batch norm without --data.
TEST_F(Cli, AverageIsTheMeanOfTheWeightsWithRecalibratedBatchNorm) {
  TempDir tmp;
  RunResult other = run_cli(train_args(csv_, tmp / "b", 1));  // one epoch: not the shared run's weights
  ASSERT_EQ(other.rc, 0) << describe(other);
  const std::string b = tmp / "b/model.ferkit";
  RunResult r = run_cli({"average", "--models", model(), b, "--data", csv_, "--out", tmp / "soup.ferkit",
                         "--threads", "1"});
  ASSERT_EQ(r.rc, 0) << describe(r);
  EXPECT_TRUE(contains(r.err, "the average of 2 models")) << r.err;
  const ferkit::Model ma = load_model_at(model()), mb = load_model_at(b), soup = load_model_at(tmp / "soup.ferkit");
  // The same mean, recalibrated by `recalibrate`, gives the same statistics.
  RunResult recal = run_cli({"recalibrate", "--model", tmp / "soup.ferkit", "--data", csv_, "--out",
                             tmp / "again.ferkit", "--threads", "1"});
  ASSERT_EQ(recal.rc, 0) << describe(recal);
  const ferkit::Model again = load_model_at(tmp / "again.ferkit");
  for (const auto& t : soup.tensors)
    for (size_t i = t.offset; i < t.offset + t.size; ++i) {
      if (t.trainable) EXPECT_NEAR(soup.params[i], (ma.params[i] + mb.params[i]) / 2, 1e-6) << t.name;
      else EXPECT_NEAR(soup.params[i], again.params[i], 1e-5 * (1 + std::fabs(again.params[i]))) << t.name;
    }
  RunResult info = run_cli({"info", "--model", tmp / "soup.ferkit"});
  EXPECT_TRUE(contains(info.out, "\"averaged_from\"") && contains(info.out, "\"bn_recalibrated\"") &&
              !contains(info.out, "\"eval\"")) << info.out;

  RunResult one = run_cli({"average", "--models", model(), "--data", csv_, "--out", tmp / "x.ferkit"});
  EXPECT_NE(one.rc, 0);
  RunResult no_data = run_cli({"average", "--models", model(), b, "--out", tmp / "x.ferkit"});
  EXPECT_NE(no_data.rc, 0);
  EXPECT_TRUE(contains(no_data.err, "--data")) << no_data.err;
  RunResult seed_arch = run_cli({"train", "--data", csv_, "--arch", "seed", "--epochs", "1", "--limit", "8",
                                 "--threads", "1", "--out", tmp / "s"});
  ASSERT_EQ(seed_arch.rc, 0) << describe(seed_arch);
  RunResult mixed = run_cli({"average", "--models", model(), tmp / "s/model.ferkit", "--data", csv_, "--out",
                             tmp / "x.ferkit"});
  EXPECT_NE(mixed.rc, 0);
  EXPECT_TRUE(contains(mixed.err, tmp / "s/model.ferkit") && contains(mixed.err, "another architecture"))
      << mixed.err;
  EXPECT_FALSE(fs::exists(tmp / "x.ferkit"));
}

TEST_F(Cli, ExportHalfPrecisionAndInt8WithMetadata) {
  TempDir tmp;
  const std::string meta = tmp / "meta.json", half = tmp / "half.ferkit";
  write_all(meta, "{\"card\": \"see default.md\", \"name\": \"renamed\"}");
  RunResult e = run_cli({"export", "--checkpoint", model(), "--out", half, "--fp16", "--meta", meta});
  ASSERT_EQ(e.rc, 0) << describe(e);
  EXPECT_TRUE(contains(e.err, "the model's weights, float16")) << e.err;
  EXPECT_LT(fs::file_size(half), fs::file_size(model()));
  RunResult info = run_cli({"info", "--model", half});
  ASSERT_EQ(info.rc, 0) << describe(info);
  EXPECT_TRUE(contains(info.out, "\"weights\": \"f16\"") && contains(info.out, "\"name\": \"renamed\"") &&
              contains(info.out, "\"epochs_run\": 3")) << info.out;
  RunResult a = run_cli({"predict", "--json", "--model", model(), png_});
  RunResult b = run_cli({"predict", "--json", "--model", half, png_});
  ASSERT_EQ(b.rc, 0) << describe(b);
  for (const char* k : kClasses)
    EXPECT_NEAR(json::parse(a.out)[0]["probabilities"][k].get<double>(),
                json::parse(b.out)[0]["probabilities"][k].get<double>(), 2e-3) << k;
  // int8 with per-channel scales: smaller again, close predictions; --fp16 and --int8 together are refused.
  const std::string i8 = tmp / "i8.ferkit";
  RunResult q = run_cli({"export", "--checkpoint", model(), "--out", i8, "--int8"});
  ASSERT_EQ(q.rc, 0) << describe(q);
  EXPECT_TRUE(contains(q.err, "int8 with per-channel scales")) << q.err;
  EXPECT_LT(fs::file_size(i8), fs::file_size(half));
  RunResult qi = run_cli({"info", "--model", i8});
  EXPECT_TRUE(contains(qi.out, "\"weights\": \"i8\"")) << qi.out;
  RunResult c = run_cli({"predict", "--json", "--model", i8, png_});
  ASSERT_EQ(c.rc, 0) << describe(c);
  for (const char* k : kClasses)
    EXPECT_NEAR(json::parse(a.out)[0]["probabilities"][k].get<double>(),
                json::parse(c.out)[0]["probabilities"][k].get<double>(), 2e-2) << k;
  RunResult both = run_cli({"export", "--checkpoint", model(), "--out", tmp / "x.ferkit", "--int8", "--fp16"});
  EXPECT_NE(both.rc, 0);
  EXPECT_TRUE(contains(both.err, "excludes")) << both.err;
  EXPECT_FALSE(fs::exists(tmp / "x.ferkit"));

  write_all(meta, "[1, 2]");
  RunResult bad = run_cli({"export", "--checkpoint", model(), "--out", tmp / "x.ferkit", "--meta", meta});
  EXPECT_NE(bad.rc, 0);
  EXPECT_TRUE(contains(bad.err, meta + ": expected a JSON object")) << bad.err;
  EXPECT_FALSE(fs::exists(tmp / "x.ferkit"));
}

TEST_F(Cli, ResumeContinuesExactlyLikeAnUninterruptedRun) {
  TempDir tmp;
  const std::string out = tmp / "run", straight = tmp / "ref";
  // The reference: 3 epochs straight. It runs with the very same command line as the resumed run below (then its
  // folder is renamed): the native build's floating-point results depend on the alignment of heap buffers
  // (vectorized loops peel to an aligned address), and that depends on the lengths of the path strings allocated
  // before them. Different --out paths give results that differ in the last bits, and Adam magnifies those in the
  // tiny architecture's conv bias before batch norm (its gradient is rounding noise).
  RunResult ref = run_cli(train_args(csv_, out, kCsvEpochs));
  ASSERT_EQ(ref.rc, 0) << describe(ref);
  fs::rename(out, straight);

  RunResult first = run_cli(train_args(csv_, out, 2));
  ASSERT_EQ(first.rc, 0) << describe(first);
  const std::vector<std::string> h2 = lines_of(out + "/history.csv");
  ASSERT_EQ(h2.size(), 3u);

  RunResult resumed = run_cli(plus(train_args(csv_, out, kCsvEpochs), {"--resume"}));
  ASSERT_EQ(resumed.rc, 0) << describe(resumed);
  EXPECT_TRUE(contains(resumed.err, "resumed from " + out + "/checkpoint.ferkit: 2 epochs done")) << resumed.err;
  check_train_dir(out, kCsvEpochs, 7 * kCsvPrivate);
  const std::vector<std::string> h3 = lines_of(out + "/history.csv");
  ASSERT_EQ(h3.size(), 4u);
  EXPECT_EQ(h3[0], h2[0]);
  EXPECT_EQ(h3[1], h2[1]);
  EXPECT_EQ(h3[2], h2[2]);

  // The straight run has the same losses and accuracies per epoch (the columns before lr, seconds, images/s) ...
  const std::vector<std::string> h_ref = lines_of(straight + "/history.csv");
  ASSERT_EQ(h_ref.size(), 4u);
  auto leading = [](const std::string& line) {
    size_t at = 0;
    for (int i = 0; i < 5 && at != std::string::npos; ++i) at = line.find(',', at + 1);
    return line.substr(0, at);
  };
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(leading(h3[i]), leading(h_ref[i]));

  // ... and a model that predicts exactly the same probabilities.
  expect_same_model(out, straight);

  // Resuming without a checkpoint is an error naming it.
  RunResult none = run_cli(plus(train_args(csv_, tmp / "empty", 1), {"--resume"}));
  EXPECT_EQ(none.rc, 1) << describe(none);
  EXPECT_TRUE(contains(none.err, tmp / "empty/checkpoint.ferkit")) << none.err;
}

TEST_F(Cli, SigintSavesCheckpointAndResumeFinishes) {
  TempDir tmp;
  const std::string data = tmp / "big.csv", out = tmp / "run", log = tmp / "log.txt";
  write_all(data, fer_csv(200, 2, 2));  // 1400 training images: about a second per epoch
  // Effectively endless, so the signal always arrives during training.
  const pid_t pid = spawn_cli({"train", "--data", data, "--arch", "tiny", "--epochs", "1000", "--batch", "8", "--seed",
                               "3", "--threads", "1", "--out", out},
                              log);
  ASSERT_GT(pid, 0) << "cannot start " << FERKIT_TRAIN_BIN;

  // Wait until the signal handler is installed (it is, before "training on" is printed), then a moment more.
  using clock = std::chrono::steady_clock;
  auto deadline = clock::now() + std::chrono::seconds(60);
  int status = 0;
  bool exited = false;
  while (!contains(read_all(log), "training on") && clock::now() < deadline) {
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!exited) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1200));
    ASSERT_EQ(::kill(pid, SIGINT), 0);
    deadline = clock::now() + std::chrono::seconds(60);
    while (!exited && clock::now() < deadline) {
      if (::waitpid(pid, &status, WNOHANG) == pid) exited = true;
      else std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!exited) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      FAIL() << "fer-train did not stop within 60 s of SIGINT; output:\n" << read_all(log);
    }
  }
  const std::string text = read_all(log);
  ASSERT_EQ(decode_status(status), 130) << text;
  EXPECT_TRUE(contains(text, "interrupted: checkpoint saved to " + out + "/checkpoint.ferkit")) << text;
  EXPECT_TRUE(contains(text, "--resume")) << text;
  EXPECT_TRUE(fs::is_regular_file(out + "/checkpoint.ferkit"));
  EXPECT_FALSE(fs::exists(out + "/model.ferkit")) << "an interrupted run must not write the final model";

  // Finish with one more epoch than were completed before the signal. The checkpoint is always of an open epoch
  // (the next epoch has begun when the signal is seen; usually it came mid-epoch).
  const std::vector<std::string> before =
      fs::exists(out + "/history.csv") ? lines_of(out + "/history.csv") : std::vector<std::string>{};
  const size_t done = before.empty() ? 0 : before.size() - 1;
  std::vector<std::string> resume = {"train", "--data", data, "--arch", "tiny", "--epochs", std::to_string(done + 1),
                                     "--batch", "8", "--seed", "3", "--threads", "1", "--out", out, "--resume"};
  RunResult r = run_cli(resume);
  ASSERT_EQ(r.rc, 0) << describe(r);
  EXPECT_TRUE(contains(r.err, "resumed from " + out + "/checkpoint.ferkit: " + std::to_string(done) +
                                  " epochs done (and part of the next)"))
      << r.err;
  check_train_dir(out, static_cast<int>(done + 1), 7 * 2);
  const std::vector<std::string> after = lines_of(out + "/history.csv");
  for (size_t i = 0; i < before.size() && i < after.size(); ++i) EXPECT_EQ(after[i], before[i]);
}

// Killed with SIGKILL at random moments, again and again, each time resumed with --resume from the last complete
// checkpoint: never a corrupt file, and the same final model as a run that was never interrupted.
TEST_F(Cli, SigkillAtRandomMomentsResumesToTheSameResult) {
  TempDir tmp;
  const std::string data = tmp / "data.csv", out = tmp / "run", ref = tmp / "ref", log = tmp / "log.txt";
  write_all(data, fer_csv(40, 2, 2));  // 280 training images
  const std::vector<std::string> args = {"train", "--data", data, "--arch", "tiny", "--epochs", "12", "--batch", "8",
                                         "--seed", "11", "--threads", "1", "--out", out};
  // The reference, with the very same command line (see ResumeContinuesExactlyLikeAnUninterruptedRun).
  const auto t0 = std::chrono::steady_clock::now();
  RunResult straight = run_cli(args);
  ASSERT_EQ(straight.rc, 0) << describe(straight);
  const double run_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  fs::rename(out, ref);

  std::mt19937 rng(20261125);
  int kills = 0, attempts = 0;
  for (;; ++attempts) {
    ASSERT_LT(attempts, 60) << "the run never finished";
    const bool resume = fs::exists(out + "/checkpoint.ferkit");
    const pid_t pid = spawn_cli(resume ? plus(args, {"--resume"}) : args, log);
    ASSERT_GT(pid, 0);
    // Kill at a random moment (start-up, training, checkpointing, evaluation or the final writes: each run goes on
    // from the last checkpoint, a fifth of a whole run's length at most); after 12 kills let it finish.
    const int delay_ms =
        kills < 12 ? std::uniform_int_distribution<int>(10, std::max(20, static_cast<int>(run_ms / 5)))(rng) : 1000000;
    int status = 0;
    bool exited = false;
    for (auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(delay_ms);
         std::chrono::steady_clock::now() < end;) {
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        exited = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (!exited) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      ++kills;
    }
    // Whatever is in the folder is whole: the checkpoint loads (export reads it), the histories parse.
    if (fs::exists(out + "/checkpoint.ferkit")) {
      RunResult e = run_cli({"export", "--checkpoint", out + "/checkpoint.ferkit", "--out", tmp / "probe.ferkit"});
      ASSERT_EQ(e.rc, 0) << "after kill " << kills << ": " << describe(e);
    }
    if (fs::exists(out + "/history.json")) {
      EXPECT_NO_THROW(json::parse(read_all(out + "/history.json"))) << "after kill " << kills;
    }
    if (exited && decode_status(status) != 0)
      FAIL() << "fer-train failed (status " << decode_status(status) << "):\n" << read_all(log);
    if (exited && kills >= 12) break;
    if (exited) {
      // Finished before 12 kills (the reference run was slow, so the delays were long: a loaded machine): check
      // this model too, then start over until 12 kills have happened.
      expect_same_model(out, ref);
      fs::remove_all(out);
    }
  }
  for (const auto& entry : fs::directory_iterator(out))
    EXPECT_EQ(entry.path().filename().string().find(".tmp."), std::string::npos)
        << entry.path() << " is a temporary file left behind";
  // The same final model as the uninterrupted run: identical predictions and evaluation.
  expect_same_model(out, ref);
}

// A loss that turns NaN or infinite stops training with a message naming the epoch and batch, and the last good
// checkpoint (the previous epoch's) stays, whole and finite, to resume from with a lower learning rate.
TEST_F(Cli, DivergenceStopsAndKeepsTheLastGoodCheckpoint) {
  TempDir tmp;
  const std::string out = tmp / "run";
  // Epoch 1 at lr 0.01, then the step schedule multiplies it by 1e12: epoch 2 diverges.
  RunResult r = run_cli(plus(train_args(csv_, out, 4), {"--lr", "0.01", "--schedule", "step", "--step-size", "1",
                                                        "--gamma", "1e12", "--optimizer", "sgd"}));
  EXPECT_EQ(r.rc, 1) << describe(r);
  EXPECT_TRUE(contains(r.err, "training diverged")) << r.err;
  EXPECT_TRUE(contains(r.err, "epoch 2")) << r.err;
  EXPECT_FALSE(fs::exists(out + "/model.ferkit"));
  ASSERT_TRUE(fs::exists(out + "/checkpoint.ferkit"));
  const std::vector<std::string> h = lines_of(out + "/history.csv");
  EXPECT_EQ(h.size(), 2u) << "one finished epoch";
  RunResult e = run_cli({"export", "--checkpoint", out + "/checkpoint.ferkit", "--out", tmp / "good.ferkit", "--last"});
  ASSERT_EQ(e.rc, 0) << describe(e);  // loading refuses NaN/Inf weights, so this checks they are finite
  RunResult p = run_cli({"predict", "--model", tmp / "good.ferkit", png_});
  EXPECT_EQ(p.rc, 0) << describe(p);
}

TEST(CliBadInput, MalformedCsvRowIsSkippedOrStrictError) {
  TempDir tmp;
  // Lines: 1 header, 2-15 Training, 16 malformed (2303 pixels), 17 unknown label, then the test rows.
  std::string csv = "emotion,pixels,Usage\n";
  for (int i = 0; i < 2; ++i)
    for (int c = 0; c < 7; ++c) csv += csv_row(c, i * 7 + c, "Training");
  std::string short_row = csv_row(2, 99, "Training");
  short_row.erase(short_row.find(' '), short_row.find(' ', short_row.find(' ') + 1) - short_row.find(' '));
  csv += short_row;
  csv += "9," + csv_row(1, 98, "Training").substr(2);
  for (int c = 0; c < 7; ++c) csv += csv_row(c, 200 + c, "PublicTest");
  for (int c = 0; c < 7; ++c) csv += csv_row(c, 300 + c, "PrivateTest");
  const std::string path = tmp / "bad rows.csv";  // a space in the name, too
  write_all(path, csv);

  RunResult lax = run_cli(train_args(path, tmp / "lax", 1));
  ASSERT_EQ(lax.rc, 0) << describe(lax);
  EXPECT_TRUE(contains(lax.err, "30 read, 28 kept, 2 skipped")) << lax.err;
  EXPECT_TRUE(contains(lax.err, path + ":16:")) << lax.err;
  EXPECT_TRUE(contains(lax.err, path + ":17:")) << lax.err;
  check_train_dir(tmp / "lax", 1, 7);

  RunResult strict = run_cli(plus(train_args(path, tmp / "strict", 1), {"--strict"}));
  EXPECT_EQ(strict.rc, 1) << describe(strict);
  EXPECT_TRUE(contains(strict.err, path + ":16:")) << strict.err;
  EXPECT_FALSE(fs::exists(tmp / "strict/model.ferkit"));

  // eval --strict stops at the same line.
  RunResult eval = run_cli({"eval", "--model", tmp / "lax/model.ferkit", "--data", path, "--strict"});
  EXPECT_EQ(eval.rc, 1) << describe(eval);
  EXPECT_TRUE(contains(eval.err, path + ":16:")) << eval.err;
}

TEST_F(Cli, CorruptModelFilesFailCleanly) {
  TempDir tmp;
  std::string noise(4096, '\0');
  uint32_t s = 99;
  for (char& c : noise) {
    s = s * 1664525u + 1013904223u;
    c = static_cast<char>(s >> 24);
  }
  const std::string random = tmp / "random.ferkit", truncated = tmp / "truncated.ferkit",
                    empty = tmp / "empty.ferkit", missing = tmp / "missing.ferkit";
  write_all(random, noise);
  const std::string good = read_all(model());
  ASSERT_GT(good.size(), 100u);
  write_all(truncated, good.substr(0, good.size() / 2));
  write_all(empty, "");
  for (const std::string& file : {random, truncated, empty, missing}) {
    const std::vector<std::vector<std::string>> commands = {
        {"eval", "--model", file, "--data", csv_},
        {"predict", "--model", file, png_},
        {"info", "--model", file},
    };
    for (const auto& cmd : commands) {
      SCOPED_TRACE(cmd[0] + " " + file);
      RunResult r = run_cli(cmd);
      EXPECT_EQ(r.rc, 1) << describe(r);
      EXPECT_TRUE(contains(r.err, file + ":")) << r.err;
      EXPECT_TRUE(contains(r.err, "error")) << r.err;
    }
  }
  // A truncated checkpoint is not resumed from either.
  const std::string out = tmp / "run";
  fs::create_directories(out);
  const std::string ckpt = read_all(csv_run_ + "/checkpoint.ferkit");
  write_all(out + "/checkpoint.ferkit", ckpt.substr(0, ckpt.size() - 10));
  RunResult r = run_cli(plus(train_args(csv_, out, kCsvEpochs), {"--resume"}));
  EXPECT_EQ(r.rc, 1) << describe(r);
  EXPECT_TRUE(contains(r.err, out + "/checkpoint.ferkit")) << r.err;
}

TEST_F(Cli, UnknownArchitectureIsAClearError) {
  TempDir tmp;
  std::vector<std::string> args = train_args(csv_, tmp / "run", 1);
  *std::find(args.begin(), args.end(), "tiny") = "resnet9000";
  RunResult r = run_cli(args);
  EXPECT_EQ(r.rc, 1) << describe(r);
  EXPECT_TRUE(contains(r.err, "unknown architecture 'resnet9000'")) << r.err;
  EXPECT_TRUE(contains(r.err, "tiny") && contains(r.err, "seed")) << "the error should list the built-ins: " << r.err;
}

TEST(CliBadInput, TruncatedGzipCsvIsAnErrorNamingTheFile) {
  TempDir tmp;
  const std::string text = fer_csv(3, 1, 1);
  const std::string full = tmp / "full.csv.gz", cut = tmp / "cut.csv.gz";
  gzFile f = gzopen(full.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, text.data(), static_cast<unsigned>(text.size())), static_cast<int>(text.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
  const std::string gz = read_all(full);
  write_all(cut, gz.substr(0, gz.size() * 6 / 10));

  RunResult r = run_cli(train_args(cut, tmp / "run", 1));
  EXPECT_EQ(r.rc, 1) << describe(r);
  EXPECT_TRUE(contains(r.err, cut + ":")) << r.err;
  EXPECT_TRUE(contains(r.err, "truncated")) << r.err;
  EXPECT_FALSE(fs::exists(tmp / "run/model.ferkit"));
  // The intact file trains.
  RunResult good = run_cli(train_args(full, tmp / "good", 1));
  EXPECT_EQ(good.rc, 0) << describe(good);
}

TEST_F(Cli, PlotWritesPng) {
  TempDir tmp;
  RunResult r = run_cli({"plot", "--history", csv_run_ + "/history.json", "--out", tmp / "x.png"});
  ASSERT_EQ(r.rc, 0) << describe(r);
  EXPECT_TRUE(is_png(tmp / "x.png"));
  // Not a history: an error naming the file.
  write_all(tmp / "bad.json", "{\"not\": \"a history\"}");
  RunResult bad = run_cli({"plot", "--history", tmp / "bad.json", "--out", tmp / "y.png"});
  EXPECT_EQ(bad.rc, 1) << describe(bad);
  EXPECT_TRUE(contains(bad.err, tmp / "bad.json")) << bad.err;
  EXPECT_FALSE(fs::exists(tmp / "y.png"));
}

// calibrate fits a temperature on PublicTest and stores it (predictions keep their argmax, so accuracy stays);
// eval then reports the calibration error and draws the reliability diagram.
TEST_F(Cli, CalibrateStoresATemperatureAndEvalReportsCalibration) {
  TempDir tmp;
  const std::string cal = tmp / "cal.ferkit";
  RunResult c = run_cli({"calibrate", "--model", model(), "--data", csv_, "--out", cal});
  ASSERT_EQ(c.rc, 0) << describe(c);
  EXPECT_TRUE(contains(c.out, "public   temperature 1.0000 -> ")) << c.out;
  EXPECT_TRUE(contains(c.out, "(unchanged)")) << c.out;
  const ferkit::Model before = load_model_at(model()), after = load_model_at(cal);
  EXPECT_EQ(before.temperature, 1.0f);
  EXPECT_NE(after.temperature, 1.0f);
  EXPECT_EQ(after.params, before.params);
  RunResult info = run_cli({"info", "--model", cal});
  EXPECT_TRUE(contains(info.out, "temperature: ")) << info.out;
  EXPECT_TRUE(contains(info.out, "\"calibration\"")) << info.out;
  for (const std::string& m : {model(), cal}) {
    const std::string dir = tmp / (m == cal ? "eval-cal" : "eval-base");
    RunResult e = run_cli({"eval", "--model", m, "--data", csv_, "--split", "private", "--out", dir});
    ASSERT_EQ(e.rc, 0) << describe(e);
    EXPECT_TRUE(contains(e.out, "calibration error (ECE) ")) << e.out;
    EXPECT_TRUE(is_png(dir + "/reliability.png"));
    const json j = json::parse(read_all(dir + "/metrics.json"));
    ASSERT_TRUE(j.contains("ece") && j["ece"].is_number());
    ASSERT_EQ(j["reliability"].size(), 15u);
    long counted = 0;
    for (const json& b : j["reliability"]) counted += b["count"].get<long>();
    EXPECT_EQ(counted, j["images"].get<long>());
  }
  EXPECT_EQ(read_all(tmp / "eval-base/confusion.csv"), read_all(tmp / "eval-cal/confusion.csv"));
}

// eval --ferplus scores the same faces a second time against the FER+ majority vote (row-aligned with the CSV).
TEST_F(Cli, EvalAlsoScoresAgainstTheFerPlusMajorityVote) {
  TempDir tmp;
  // FER+ columns: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF. Each
  // PrivateTest face gets all its votes for its own class, except the first, whose votes tie (left out), and the
  // second, all voted 'unknown' (left out).
  const char* fer_plus_column[7] = {"anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"};
  const std::vector<std::string> columns = {"neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                                            "contempt", "unknown", "NF"};
  std::string csv = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n";
  int row = 0;
  for (const auto& [usage, per_class] : {std::pair{"Training", kCsvTrain}, std::pair{"PublicTest", kCsvPublic},
                                         std::pair{"PrivateTest", kCsvPrivate}})
    for (int i = 0; i < per_class; ++i)
      for (int c = 0; c < 7; ++c, ++row) {
        csv += std::string(usage) + ",fer" + std::to_string(row) + ".png";
        const bool first = std::string(usage) == "PrivateTest" && i == 0 && c == 0;
        const bool second = std::string(usage) == "PrivateTest" && i == 0 && c == 1;
        for (const std::string& col : columns)
          csv += "," + std::string(first ? (col == "neutral" || col == "anger" ? "5" : "0")
                                   : second ? (col == "unknown" ? "10" : "0")
                                            : (col == fer_plus_column[c] ? "10" : "0"));
        csv += "\n";
      }
  const std::string votes = tmp / "fer2013new.csv";
  write_all(votes, csv);
  RunResult e = run_cli({"eval", "--model", model(), "--data", csv_, "--ferplus", votes, "--out", tmp / "ev"});
  ASSERT_EQ(e.rc, 0) << describe(e);
  EXPECT_TRUE(contains(e.out, "FER+ majority labels (19 of 21 faces; 2 tied or outside the 7 classes, left out)"))
      << e.out;
  const json j = json::parse(read_all(tmp / "ev/metrics.json"));
  EXPECT_EQ(j["ferplus"]["images"], 19);
  EXPECT_EQ(j["ferplus"]["left_out"], 2);
  // The votes agree with the labels here, so the two views differ only by the two faces left out.
  const double right_ferplus = j["ferplus"]["accuracy"].get<double>() * 19, right = j["accuracy"].get<double>() * 21;
  EXPECT_LE(right_ferplus, right + 1e-9);
  EXPECT_GE(right_ferplus, right - 2 - 1e-9);
  RunResult bad = run_cli({"eval", "--model", model(), "--data", csv_, "--ferplus", csv_});
  EXPECT_EQ(bad.rc, 1) << describe(bad);
  EXPECT_TRUE(contains(bad.err, csv_)) << bad.err;
}

#ifdef FERKIT_MPIEXEC
// mpirun -np 2 fer-train train --distributed: the same model as one process with the same batch (each process one
// thread, like the single run), outputs written once by process 0, --resume across processes, and an error in a
// process ending the run with the process named.
TEST_F(Cli, DistributedTrainingOverTwoProcessesMatchesOneProcess) {
  TempDir tmp;
  const std::string out = tmp / "run", single = tmp / "single", dist = tmp / "dist";
  // SGD: Adam turns the rounding noise of a bias before batch norm (zero in exact arithmetic) into whole steps.
  const std::vector<std::string> sgd = {"--optimizer", "sgd", "--nesterov", "--lr", "0.02"};
  RunResult one = run_cli(plus(train_args(csv_, out, kCsvEpochs), sgd));
  ASSERT_EQ(one.rc, 0) << describe(one);
  fs::rename(out, single);
  RunResult two = run_mpi(2, plus(plus(train_args(csv_, out, kCsvEpochs), sgd), {"--distributed"}));
  ASSERT_EQ(two.rc, 0) << describe(two);
  EXPECT_TRUE(contains(two.err, "2 processes of 1 threads, each running 8 or 8 images of each batch of 16")) << two.err;
  // Process 0 alone prints: one summary, one line per epoch.
  size_t epochs_printed = 0;
  for (size_t at = two.err.find("epoch   1/3"); at != std::string::npos; at = two.err.find("epoch   1/3", at + 1))
    ++epochs_printed;
  EXPECT_EQ(epochs_printed, 1u) << two.err;
  check_train_dir(out, kCsvEpochs, 7 * kCsvPrivate);
  json meta;
  const std::string bytes = read_all(out + "/model.ferkit");
  ferkit::load_model(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), &meta);
  EXPECT_EQ(meta.value("processes", 0), 2);
  // The same history and predictions, up to the order of floating-point sums.
  json h1 = json::parse(read_all(single + "/history.json")), h2 = json::parse(read_all(out + "/history.json"));
  ASSERT_EQ(h1.size(), h2.size());
  for (size_t e = 0; e < h1.size(); ++e)
    for (const char* key : {"train_loss", "train_acc", "val_loss", "val_acc"})
      EXPECT_NEAR(h2[e][key].get<double>(), h1[e][key].get<double>(), 1e-4) << "epoch " << e + 1 << " " << key;
  RunResult p1 = run_cli({"predict", "--json", "--model", single + "/model.ferkit", png_, color_png_});
  RunResult p2 = run_cli({"predict", "--json", "--model", out + "/model.ferkit", png_, color_png_});
  ASSERT_EQ(p1.rc, 0) << describe(p1);
  ASSERT_EQ(p2.rc, 0) << describe(p2);
  const json a = json::parse(p1.out), b = json::parse(p2.out);
  ASSERT_EQ(a.size(), b.size());
  double largest = 0;
  for (size_t i = 0; i < a.size(); ++i)
    for (const auto& [name, v] : a[i]["probabilities"].items())
      largest = std::max(largest, std::fabs(v.get<double>() - b[i]["probabilities"][name].get<double>()));
  EXPECT_LT(largest, 1e-4) << p1.out << "\n" << p2.out;
  std::printf("two processes against one: predictions within %.2g\n", largest);
  fs::rename(out, dist);

  // Two epochs, then --resume to three: process 0 reads the checkpoint and sends it to the other.
  RunResult first = run_mpi(2, plus(plus(train_args(csv_, out, 2), sgd), {"--distributed"}));
  ASSERT_EQ(first.rc, 0) << describe(first);
  RunResult resumed = run_mpi(2, plus(plus(train_args(csv_, out, kCsvEpochs), sgd), {"--distributed", "--resume"}));
  ASSERT_EQ(resumed.rc, 0) << describe(resumed);
  EXPECT_TRUE(contains(resumed.err, "2 epochs done")) << resumed.err;
  json hr = json::parse(read_all(out + "/history.json")), hd = json::parse(read_all(dist + "/history.json"));
  ASSERT_EQ(hr.size(), hd.size());
  for (size_t e = 0; e < hr.size(); ++e)
    for (const char* key : {"train_loss", "train_acc", "val_loss", "val_acc"})
      EXPECT_NEAR(hr[e][key].get<double>(), hd[e][key].get<double>(), 1e-6) << "epoch " << e + 1 << " " << key;

  // SIGTERM to mpirun (what it passes on to the processes, and what Ctrl-C makes it send): every process stops at
  // the same batch, process 0 saves the checkpoint, and --resume finishes the run.
  {
    const std::string data = tmp / "big.csv", run = tmp / "signalled", log = tmp / "log.txt";
    write_all(data, fer_csv(200, 2, 2));
    const std::vector<std::string> args = {"train", "--data", data, "--arch", "tiny", "--batch", "8", "--seed", "3",
                                           "--threads", "1", "--out", run, "--distributed"};
    const pid_t pid = spawn_program(mpi_argv(2, plus(args, {"--epochs", "1000"})), log);
    ASSERT_GT(pid, 0);
    using clock = std::chrono::steady_clock;
    auto deadline = clock::now() + std::chrono::seconds(60);
    while (!contains(read_all(log), "training on") && clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::this_thread::sleep_for(std::chrono::milliseconds(1200));
    ASSERT_EQ(::kill(pid, SIGTERM), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    const std::string text = read_all(log);
    EXPECT_TRUE(contains(text, "interrupted: checkpoint saved to " + run + "/checkpoint.ferkit")) << text;
    EXPECT_TRUE(fs::is_regular_file(run + "/checkpoint.ferkit")) << text;
    EXPECT_FALSE(fs::exists(run + "/model.ferkit"));
    const size_t done = fs::exists(run + "/history.csv") ? lines_of(run + "/history.csv").size() - 1 : 0;
    RunResult finish = run_mpi(2, plus(args, {"--epochs", std::to_string(done + 1), "--resume"}));
    ASSERT_EQ(finish.rc, 0) << describe(finish);
    EXPECT_TRUE(contains(finish.err, std::to_string(done) + " epochs done (and part of the next)")) << finish.err;
    check_train_dir(run, static_cast<int>(done + 1), 7 * 2);
  }

  // An error in process 0 (no checkpoint to resume from) ends both, naming the process and the file.
  RunResult none = run_mpi(2, plus(plus(train_args(csv_, tmp / "empty", 1), sgd), {"--distributed", "--resume"}));
  EXPECT_NE(none.rc, 0) << describe(none);
  EXPECT_TRUE(contains(none.err, "fer-train (process 0 of 2): error: " + (tmp / "empty/checkpoint.ferkit")))
      << none.err;
}
#endif

}  // namespace

#else

TEST(Cli, SkippedWithoutTheBinary) { GTEST_SKIP() << "fer-train is not built (no FERKIT_TRAIN_BIN)"; }

#endif

#ifdef FERKIT_HAVE_ONNX
// export --onnx, then import: the model file read back from the graph predicts what the shipped model does.
TEST(CliOnnx, ExportThenImportPredictsTheSame) {
  const fs::path tmp = make_temp_dir("onnx");
  const std::string model = FERKIT_SOURCE_DIR "/assets/models/default.ferkit";
  const std::string photo = "/usr/share/doc/opencv-doc/examples/data/messi5.jpg";
  RunResult e = run_cli({"export", "--checkpoint", model, "--onnx", (tmp / "m.onnx").string()});
  ASSERT_EQ(e.rc, 0) << describe(e);
  EXPECT_TRUE(contains(e.err, "ONNX opset 13")) << e.err;
  RunResult i = run_cli({"import", (tmp / "m.onnx").string(), "--out", (tmp / "back.ferkit").string()});
  ASSERT_EQ(i.rc, 0) << describe(i);
  RunResult a = run_cli({"predict", "--json", "--model", model, photo});
  RunResult b = run_cli({"predict", "--json", "--model", (tmp / "back.ferkit").string(), photo});
  ASSERT_EQ(a.rc, 0) << describe(a);
  EXPECT_EQ(a.out, b.out);
  RunResult none = run_cli({"export", "--checkpoint", model});
  EXPECT_EQ(none.rc, 1);
  EXPECT_TRUE(contains(none.err, "export: give --out (a model file), --onnx, or both")) << none.err;
  RunResult bad = run_cli({"import", model, "--out", (tmp / "x.ferkit").string()});
  EXPECT_EQ(bad.rc, 1);
  EXPECT_TRUE(contains(bad.err, model + ": not an ONNX model")) << bad.err;
  EXPECT_FALSE(fs::exists(tmp / "x.ferkit"));
}

// A taught model carries its teach gate (docs/teaching.md): info says so, ONNX export refuses it unless dropped,
// and --gate 0 teaches without one.
TEST(CliOnnx, ATaughtModelsGateIsShownAndOnlyDroppedOnRequest) {
  const fs::path tmp = make_temp_dir("gate");
  write_folder_dataset(tmp, 3, 0);
  const std::string model = FERKIT_SOURCE_DIR "/assets/models/default.ferkit", taught = (tmp / "t.ferkit").string();
  RunResult f = run_cli({"finetune", "--model", model, "--samples", (tmp / "train").string(), "--out", taught,
                         "--epochs", "2", "--threads", "1"});
  ASSERT_EQ(f.rc, 0) << describe(f);
  EXPECT_TRUE(contains(f.err, "teach gate: tau 0.4 over")) << f.err;
  RunResult info = run_cli({"info", "--model", taught});
  ASSERT_EQ(info.rc, 0) << describe(info);
  EXPECT_TRUE(contains(info.out, "teach gate: from layer")) << info.out;
  RunResult refused = run_cli({"export", "--checkpoint", taught, "--onnx", (tmp / "t.onnx").string()});
  EXPECT_EQ(refused.rc, 1);
  EXPECT_TRUE(contains(refused.err, "teach gate")) << refused.err;
  EXPECT_FALSE(fs::exists(tmp / "t.onnx"));
  RunResult dropped = run_cli({"export", "--checkpoint", taught, "--no-gate", "--onnx", (tmp / "t.onnx").string()});
  EXPECT_EQ(dropped.rc, 0) << describe(dropped);
  EXPECT_TRUE(contains(dropped.err, "dropped the teach gate")) << dropped.err;
  RunResult plain = run_cli({"finetune", "--model", model, "--samples", (tmp / "train").string(), "--out", taught,
                             "--epochs", "2", "--threads", "1", "--gate", "0"});
  ASSERT_EQ(plain.rc, 0) << describe(plain);
  RunResult info0 = run_cli({"info", "--model", taught});
  EXPECT_FALSE(contains(info0.out, "teach gate")) << info0.out;
}
#endif
