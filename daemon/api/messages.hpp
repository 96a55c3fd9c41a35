// The daemon's HTTP vocabulary: who asks (Peer), what they ask (Request) and
// what they get (Response, through a Reply). Every layer speaks it; it depends
// on nothing of the daemon's own.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <string_view>

#include "proto/errors.hpp"
#include "proto/routes.hpp"

namespace kosli::daemon {

// How the requesting program was determined (best effort; the audit log says which).
enum class RequesterSource {
  peer,           // the connected process's own program
  client_parent,  // the peer is this installation's kosli-cred: the program that ran it
  client_exec,    // the peer is this installation's kosli-cred exec: the program it is about to run
};

// Who is asking: pid, uid and gid from SO_PEERCRED, programs from /proc.
struct Peer {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string exe;        // the peer's program; empty when it cannot be known
  std::string requester;  // the requesting program (see requester_source); empty when unknown
  pid_t requester_pid = 0;
  RequesterSource requester_source = RequesterSource::peer;
  bool installed_client = false;  // exe is this installation's kosli-cred (compared by real path)
  // The connection, while it is open: where a guard decides, the peer is read
  // again for each request (daemon/transport/peer_identity.hpp). -1 for no socket.
  int socket = -1;
};

// Sends an interim answer on a request's connection before its final one: the
// transport's, for the one route that may wait for a person (a token for a
// profile with "confirm"). Call it only while the request's Reply is pending
// (that keeps the connection); it may be called from any thread.
class Interim {
 public:
  // "102 Processing": the daemon asks a person, for up to `open_for` more.
  virtual void asking_person(std::chrono::seconds open_for) = 0;

 protected:
  ~Interim() = default;
};

struct Request {
  std::string method;
  std::string target;
  std::string content_type;
  std::string body;  // wiped by the router once parsed
  // The program `kosli-cred exec` is about to run (proto/routes.hpp's
  // kExecProgramHeader); believed only from this installation's kosli-cred.
  std::string exec_program;
  // Where an interim answer goes; null where there is none (a test's router).
  Interim* interim = nullptr;

  // Whether the body is declared JSON (application/json, any parameters).
  bool is_json() const;
};

struct Response {
  int status = 200;
  std::string body;
  std::string_view content_type = kJsonContentType;  // always a constant
  std::string allow;       // for 405
  bool sensitive = false;  // holds a key: sent with no-store, wiped after sending
};

using Reply = std::function<void(Response)>;

Response error_response(ErrorCode code, std::string message);

// The daemon itself, as the audit log names what it does on its own (imports,
// scheduled rotations).
Peer this_process();

}  // namespace kosli::daemon
