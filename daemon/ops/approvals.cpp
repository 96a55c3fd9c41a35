#include "daemon/ops/approvals.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <ctime>
#include <fstream>
#include <iterator>

#include <spdlog/spdlog.h>

#include "daemon/ops/askpass.hpp"
#include "daemon/ops/audit_log.hpp"
#include "daemon/ops/metrics.hpp"
#include "proto/display.hpp"

namespace kosli::daemon {
namespace {

// Questions open at once; past this a request is denied rather than stacking dialogs.
constexpr std::size_t kMaxOpenQuestions = 16;
// How much of a command line the question shows.
constexpr std::size_t kMaxCommandLine = 300;

std::string proc_file(pid_t pid, const char* name) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/" + name, std::ios::binary);
  std::string text;
  text.resize(4096);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  return text;
}

std::string command_line(pid_t pid) {
  if (pid <= 0) return "(unknown)";
  std::string line = proc_file(pid, "cmdline");
  while (!line.empty() && line.back() == '\0') line.pop_back();
  for (char& c : line) {
    if (c == '\0') c = ' ';
  }
  if (line.empty()) return "(unknown)";
  if (line.size() > kMaxCommandLine) line = line.substr(0, kMaxCommandLine) + "...";
  return display_safe(line);
}

pid_t parent_of(pid_t pid) {
  if (pid <= 0) return 0;
  const std::string stat = proc_file(pid, "stat");
  const auto paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 4 >= stat.size()) return 0;
  return static_cast<pid_t>(std::atol(stat.c_str() + paren + 4));  // ") S <ppid> ..."
}

std::string working_directory(pid_t pid) {
  char buf[PATH_MAX];
  const auto n = pid > 0 ? ::readlink(("/proc/" + std::to_string(pid) + "/cwd").c_str(), buf, sizeof buf - 1) : -1;
  return n > 0 ? display_safe(std::string_view(buf, static_cast<std::size_t>(n))) : "(unknown)";
}

std::string program_of(const Peer& peer) {
  return peer.requester.empty() ? "an unidentified program" : display_safe(peer.requester);
}

std::string_view confirm_name(Confirm c) {
  switch (c) {
    case Confirm::never: return "never";
    case Confirm::per_program: return "per-program";
    case Confirm::always: return "always";
  }
  return "";
}

std::string_view source_name(RequesterSource source) {
  switch (source) {
    case RequesterSource::peer: return "peer";
    case RequesterSource::client_parent: return "client";
    case RequesterSource::client_exec: return "exec";
  }
  return "";
}

// What a per-program yes is remembered by: the uid, how the program asked (a
// yes to git through the credential helper is not one to `kosli-cred exec --
// git`) and its real path, which comes last (describe() shows it).
std::string approval_key(const Peer& peer) {
  return std::to_string(peer.uid) + '\0' + std::string(source_name(peer.requester_source)) + '\0' + peer.requester;
}

std::string path_of_key(const std::string& key) { return key.substr(key.rfind('\0') + 1); }

std::string question_text(const ProfileMeta& meta, const Peer& peer, Confirm confirm) {
  const pid_t pid = peer.requester_pid;
  std::string q = "A program asks for the Kosli API key of profile '" + display_safe(meta.name) + "' (" +
                  std::string(kind_name(meta.kind)) + " key, org " + display_safe(meta.org) + ", " +
                  display_safe(meta.host) + ").\n\n";
  q += "Program: " + program_of(peer) + " (pid " + std::to_string(pid) + ")\n";
  q += "Command line: " + command_line(pid) + "\n";
  q += "Parent: " + command_line(parent_of(pid)) + "\n";
  q += "Working directory: " + working_directory(pid) + "\n\n";
  q += confirm == Confirm::per_program
           ? "Allow it? Yes approves this program until the session locks or kosli-credd restarts."
           : "Allow it this once?";
  return q;
}

}  // namespace

struct Approvals::Question {
  std::string key;
  ProfileMeta meta;
  Peer peer;  // the first to ask
  Confirm confirm = Confirm::never;
  std::vector<std::pair<Peer, Done>> waiting;
  std::vector<Interim*> told;  // told once asking; cleared then. Under mutex_
  std::optional<std::chrono::steady_clock::time_point> open_until;  // once an askpass asks. Under mutex_
  bool finished = false;  // under mutex_
};

namespace {

// What is left of an open question, in whole seconds (at least one).
std::chrono::seconds left_of(std::chrono::steady_clock::time_point until) {
  const auto left = std::chrono::ceil<std::chrono::seconds>(until - std::chrono::steady_clock::now());
  return std::max(left, std::chrono::seconds(1));
}

}  // namespace

Approvals::Approvals(const Config& config, AuditLog& audit, Metrics& metrics)
    : config_(config), audit_(audit), metrics_(metrics) {
  for (const auto& [name, profile] : config_.profiles) {
    if (profile.confirm != Confirm::never) any_confirmed_ = true;
  }
  if (any_confirmed_) stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

Approvals::~Approvals() {
  stop();
  if (stop_fd_ >= 0) ::close(stop_fd_);
}

Confirm Approvals::confirm_of(std::string_view profile) const {
  const auto it = config_.profiles.find(profile);
  return it == config_.profiles.end() ? Confirm::never : it->second.confirm;
}

void Approvals::answer_on(Post post) {
  std::lock_guard lock(mutex_);
  post_ = std::move(post);
}

bool Approvals::remembered(std::string_view profile, const Peer& peer) {
  if (confirm_of(profile) != Confirm::per_program || peer.requester.empty()) return false;
  {
    std::lock_guard lock(mutex_);
    const auto it = approved_.find(profile);
    if (it == approved_.end() || it->second.count(approval_key(peer)) == 0) return false;
  }
  decided(std::string(profile), peer, true, "remembered", "remembered: approved earlier for this program");
  return true;
}

void Approvals::decided(const std::string& profile, const Peer& peer, bool allowed, std::string_view how,
                        std::string_view detail) {
  audit_.record(AuditRecord{"approval", profile, allowed ? "approved" : "denied", detail}, peer);
  metrics_.approval_decided(how);
}

void Approvals::ask(const ProfileMeta& meta, const Peer& peer, Done done, Interim* interim) {
  const Confirm confirm = confirm_of(meta.name);
  std::string refused;
  Post post;
  {
    std::lock_guard lock(mutex_);
    reap_finished();
    // Requests share a question only when a yes would cover them all: the same
    // uid, source and program under "per-program". Under "always" each asks
    // alone (the question names its pid, command line and directory), and so
    // does an unidentified program: nothing can say two of them are the same.
    std::string key = meta.name + '\0' + approval_key(peer);
    if (confirm != Confirm::per_program || peer.requester.empty()) {
      key += '\0' + std::to_string(peer.pid) + '\0' + std::to_string(peer.requester_pid) + '\0' +
             std::to_string(++questions_asked_);
    }
    if (auto it = open_.find(key); it != open_.end() && !stopping_) {
      auto& question = *it->second;
      question.waiting.emplace_back(peer, std::move(done));
      if (interim && question.open_until) {
        interim->asking_person(left_of(*question.open_until));
      } else if (interim) {
        question.told.push_back(interim);
      }
      return;
    }
    if (stopping_) {
      refused = "kosli-credd is stopping";
    } else if (open_.size() >= kMaxOpenQuestions) {
      refused = "too many questions are open at once (" + std::to_string(kMaxOpenQuestions) + ")";
    } else {
      auto question = std::make_shared<Question>(Question{key, meta, peer, confirm, {}, {}, {}, false});
      question->waiting.emplace_back(peer, std::move(done));
      if (interim) question->told.push_back(interim);
      open_.emplace(key, question);
      threads_.emplace_back(std::thread([this, question] { run_question(question); }), question);
      return;
    }
    last_denial_ = ApprovalDenial{meta.name, peer.requester, peer.requester_pid, "refused",
                                  static_cast<std::int64_t>(std::time(nullptr))};
    post = post_;
  }
  decided(meta.name, peer, false, "refused", refused);
  Approval answer{false, "profile '" + meta.name + "' needs an approval, and " + refused + "; try again"};
  if (!post) return done(std::move(answer));
  post([done = std::move(done), answer = std::move(answer)]() mutable { done(std::move(answer)); });
}

void Approvals::run_question(std::shared_ptr<Question> question) {
  const auto& meta = question->meta;
  const std::string setting = "set profiles." + meta.name + ".confirm to \"never\" in " +
                              (config_.path.empty() ? default_config_path() : config_.path);
  const std::string who = program_of(question->peer) + " (pid " + std::to_string(question->peer.requester_pid) + ")";
  bool allowed = false;
  std::string how, detail, message;
  const auto found = find_askpass(config_.askpass);
  if (const auto* why = std::get_if<std::string>(&found)) {
    how = "askpass_unavailable";
    detail = "askpass unavailable: " + *why;
    message = "profile '" + meta.name + "' hands its key out only with your approval (\"confirm\": \"" +
              std::string(confirm_name(question->confirm)) + "\"), and no one could be asked: " + *why +
              "; or " + setting;
  } else {
    const auto& program = std::get<AskpassProgram>(found);
    spdlog::info("approval: asking through {} whether {} may have a token for profile '{}'",
                 display_safe(program.path), who, meta.name);
    const auto timeout = std::chrono::seconds(config_.confirm_timeout_s);
    {
      // Those waiting are told now that a person is asked, and how long for.
      std::lock_guard lock(mutex_);
      question->open_until = std::chrono::steady_clock::now() + timeout;
      for (Interim* interim : question->told) interim->asking_person(timeout);
      question->told.clear();
    }
    switch (ask_through(program, question_text(meta, question->peer, question->confirm), timeout, stop_fd_)) {
      case AskpassAnswer::yes:
        allowed = true;
        how = "askpass_yes";
        detail = "askpass yes";
        break;
      case AskpassAnswer::no:
        how = "askpass_no";
        detail = "askpass no";
        message = "the request of " + who + " for a token of profile '" + meta.name +
                  "' was denied at the desktop; to allow it, answer yes when asked, or " + setting;
        break;
      case AskpassAnswer::timeout:
        how = "askpass_timeout";
        detail = "askpass timeout: no answer within " + std::to_string(timeout.count()) + " s";
        message = "no answer within " + std::to_string(timeout.count()) + " s to whether " + who +
                  " may have a token for profile '" + meta.name + "', so it was denied; answer the question "
                  "when it shows, or " + setting;
        break;
      case AskpassAnswer::failed:
        how = "askpass_failed";
        detail = "askpass failed: " + display_safe(program.path) + " could not be started";
        message = "profile '" + meta.name + "' needs an approval, and the askpass program " +
                  display_safe(program.path) + " could not be started; set KOSLI_CRED_ASKPASS or \"askpass\" "
                  "to one that works, or " + setting;
        break;
    }
  }
  if (!allowed) spdlog::warn("approval: denied {} a token for profile '{}': {}", who, meta.name, detail);

  std::vector<std::pair<Peer, Done>> waiting;
  Post post;
  {
    std::lock_guard lock(mutex_);
    open_.erase(question->key);
    waiting = std::move(question->waiting);
    question->told.clear();  // never asked (no askpass): nobody is told
    if (allowed && question->confirm == Confirm::per_program && !question->peer.requester.empty()) {
      approved_[meta.name].insert(approval_key(question->peer));
    }
    if (!allowed) {
      last_denial_ = ApprovalDenial{meta.name, question->peer.requester, question->peer.requester_pid,
                                    detail.substr(0, detail.find(':')), static_cast<std::int64_t>(std::time(nullptr))};
    }
    post = post_;
  }
  for (auto& [peer, done] : waiting) {
    decided(meta.name, peer, allowed, how, detail);
    auto answer = [done = std::move(done), result = Approval{allowed, message}]() mutable { done(std::move(result)); };
    if (post) {
      post(std::move(answer));
    } else {
      answer();
    }
  }
  std::lock_guard lock(mutex_);
  question->finished = true;
}

void Approvals::reap_finished() {
  for (auto it = threads_.begin(); it != threads_.end();) {
    if (it->second->finished) {
      it->first.join();
      it = threads_.erase(it);
    } else {
      ++it;
    }
  }
}

void Approvals::forget_all(std::string_view reason) {
  std::size_t forgotten = 0;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [profile, programs] : approved_) forgotten += programs.size();
    approved_.clear();
  }
  if (forgotten == 0) return;
  spdlog::info("approval: forgot {} approved program(s): {}", forgotten, reason);
  audit_.record(AuditRecord{"approval", {}, "forgotten", reason}, this_process());
}

ApprovalsHealth Approvals::describe() const {
  ApprovalsHealth health;
  std::lock_guard lock(mutex_);
  for (const auto& [profile, programs] : approved_) {
    std::set<std::string> paths;
    for (const auto& key : programs) paths.insert(path_of_key(key));
    health.approved.push_back(ApprovedPrograms{profile, {paths.begin(), paths.end()}});
  }
  health.last_denial = last_denial_;
  return health;
}

void Approvals::stop() {
  std::vector<std::pair<std::thread, std::shared_ptr<Question>>> threads;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    threads = std::move(threads_);
    threads_.clear();
  }
  if (stop_fd_ >= 0 && !threads.empty()) {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(stop_fd_, &one, sizeof one);
  }
  for (auto& [thread, question] : threads) thread.join();
}

}  // namespace kosli::daemon
