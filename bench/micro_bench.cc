// Micro figures for the parts of `vu run` start-up that are ours (not the kernel's):
// parsing argv into a ViewSpec, parsing a view file, planning, and the fork+reap of a child.
//   build/bench/vu_micro_bench
#include <benchmark/benchmark.h>
#include <unistd.h>

#include "base/child.h"
#include "runtime/cli.h"
#include "runtime/config.h"
#include "pvm/monitor.h"
#include "runtime/plan.h"
#include "runtime/watchdog.h"

namespace {

void BM_ParseArgs(benchmark::State& state) {
  std::vector<std::string> args = {"vu", "run", "--root", "--bind", "/tmp:/mnt:ro", "--tmpfs",
                                   "/scratch", "--hostname", "box", "--", "sh", "-c", "true"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  for (auto _ : state) {
    auto inv = vu::parse_args(static_cast<int>(argv.size()), argv.data());
    benchmark::DoNotOptimize(inv);
  }
}
BENCHMARK(BM_ParseArgs);

void BM_LoadViewFile(benchmark::State& state) {
  const char* text =
      "command = [\"sh\", \"-c\", \"true\"]\nroot = true\nhostname = \"box\"\n"
      "bind = [\"/tmp:/mnt:ro\", \"/etc/hosts:/etc/hosts\"]\ntmpfs = [\"/scratch\"]\n";
  for (auto _ : state) {
    vu::ViewSpec spec;
    auto r = vu::load_config_text(text, "bench.toml", &spec);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_LoadViewFile);

void BM_Plan(benchmark::State& state) {
  vu::ViewSpec spec;
  spec.mounts.push_back(*vu::bindmount::parse_bind("/tmp:/mnt:ro"));
  spec.hostname = "box";
  for (auto _ : state) {
    auto p = vu::make_plan(spec, nullptr);
    benchmark::DoNotOptimize(p);
  }
}
BENCHMARK(BM_Plan);

// pvm start-up: the seccomp program (libseccomp rules, exported as BPF).
void BM_PvmFilterBuild(benchmark::State& state) {
  vu::pvm::Config cfg;
  cfg.map.add({"/mnt", "/tmp", false});
  for (auto _ : state) {
    auto f = vu::pvm::Filter::build(cfg);
    benchmark::DoNotOptimize(f);
  }
}
BENCHMARK(BM_PvmFilterBuild)->Unit(benchmark::kMicrosecond);

// The monitor's path walk for a typical trapped call (three components, one of them a bind).
void BM_PvmResolve(benchmark::State& state) {
  vu::pvm::PathMap map;
  map.add({"/mnt", "/usr", false});
  for (auto _ : state) {
    auto r = map.resolve({}, "/mnt/lib/os-release", true, {});
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_PvmResolve)->Unit(benchmark::kMicrosecond);

// The floor under any supervisor design: one clone (pidfd) and its reap.
void BM_CloneAndReap(benchmark::State& state) {
  for (auto _ : state) {
    auto c = vu::Child::clone(0);
    if (c->is_child()) ::_exit(0);
    auto st = c->wait();
    benchmark::DoNotOptimize(st);
  }
}
BENCHMARK(BM_CloneAndReap)->Unit(benchmark::kMicrosecond);

// What every ns view adds to start-up and exit so that nothing outlives vu: the watchdog's
// clone(CLONE_VM) and, at the end, its "done" and reap (compare with BM_CloneAndReap).
void BM_WatchdogStartDisarm(benchmark::State& state) {
  for (auto _ : state) {
    auto w = vu::Watchdog::start();
    w->disarm();
    benchmark::DoNotOptimize(w);
  }
}
BENCHMARK(BM_WatchdogStartDisarm)->Unit(benchmark::kMicrosecond);

}  // namespace
