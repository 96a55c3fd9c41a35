#include "proto/errors.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace kosli {
namespace {

struct ErrorCase {
  ErrorCode code;
  int status;
  const char* name;
  int exit;
};

// DESIGN.md's error list and the client's exit codes.
constexpr ErrorCase kErrors[] = {
    {ErrorCode::bad_request, 400, "bad_request", 1},
    {ErrorCode::forbidden, 403, "forbidden", 5},
    {ErrorCode::policy_refused, 403, "policy_refused", 5},
    {ErrorCode::not_found, 404, "not_found", 3},
    {ErrorCode::method_not_allowed, 405, "method_not_allowed", 1},
    {ErrorCode::timeout, 408, "timeout", 1},
    {ErrorCode::payload_too_large, 413, "payload_too_large", 1},
    {ErrorCode::unsupported_media_type, 415, "unsupported_media_type", 1},
    {ErrorCode::too_many_requests, 429, "too_many_requests", 1},
    {ErrorCode::headers_too_large, 431, "headers_too_large", 1},
    {ErrorCode::uri_too_long, 414, "uri_too_long", 1},
    {ErrorCode::internal, 500, "internal", 1},
    {ErrorCode::not_implemented, 501, "not_implemented", 1},
    {ErrorCode::kosli_unreachable, 502, "kosli_unreachable", 1},
    {ErrorCode::backend_unavailable, 503, "backend_unavailable", 6},
    {ErrorCode::conflict, 409, "conflict", 1},
    {ErrorCode::key_expired, 410, "key_expired", 7},
    {ErrorCode::key_rejected, 422, "key_rejected", 7},
};

TEST(Errors, StatusNameAndExitCodeFollowTheDesign) {
  for (const auto& e : kErrors) {
    EXPECT_EQ(http_status(e.code), e.status) << e.name;
    EXPECT_EQ(code_name(e.code), e.name);
    EXPECT_EQ(exit_code_for(e.code), e.exit) << e.name;
    EXPECT_EQ(code_from_name(e.name), e.code) << e.name;
  }
}

TEST(Errors, ExitCodesHaveTheDocumentedValues) {
  EXPECT_EQ(exit_code::ok, 0);
  EXPECT_EQ(exit_code::error, 1);
  EXPECT_EQ(exit_code::usage, 2);
  EXPECT_EQ(exit_code::no_such_profile, 3);
  EXPECT_EQ(exit_code::daemon_unreachable, 4);
  EXPECT_EQ(exit_code::refused_by_policy, 5);
  EXPECT_EQ(exit_code::store_unavailable, 6);
  EXPECT_EQ(exit_code::key_rejected, 7);
}

TEST(Errors, UnknownNamesHaveNoCode) {
  EXPECT_EQ(code_from_name("teapot"), std::nullopt);
  EXPECT_EQ(code_from_name(""), std::nullopt);
  EXPECT_EQ(code_from_name("NOT_FOUND"), std::nullopt);
}

TEST(ErrorBody, HasTheDocumentedShape) {
  const auto j = nlohmann::json::parse(error_body({ErrorCode::not_found, "no profile named 'x'"}));
  EXPECT_EQ(
      j, (nlohmann::json{{"error", {{"code", "not_found"}, {"message", "no profile named 'x'"}}}}));
}

TEST(ErrorBody, RoundTripsThroughTheParser) {
  for (const auto& e : kErrors) {
    const ApiError in{e.code, std::string("what to do: \"") + e.name + "\"\n"};
    const auto out = parse_error_body(error_body(in));
    ASSERT_TRUE(out.has_value()) << e.name;
    EXPECT_EQ(out->code, in.code);
    EXPECT_EQ(out->message, in.message);
  }
}

TEST(ErrorBody, AnUnknownCodeFromANewerDaemonReadsAsInternal) {
  const auto out = parse_error_body(R"({"error":{"code":"teapot","message":"short and stout"}})");
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->code, ErrorCode::internal);
  EXPECT_EQ(out->message, "short and stout");
}

TEST(ErrorBody, GarbageIsNotAnError) {
  for (const char* body :
       {"", "not json", "[]", "{}", R"({"error":"x"})", R"({"error":{"code":"not_found"}})",
        R"({"error":{"message":"m"}})", R"({"error":{"code":1,"message":"m"}})",
        R"({"error":{"code":"not_found","message":null}})", "<html>502</html>"}) {
    EXPECT_EQ(parse_error_body(body), std::nullopt) << body;
  }
}

}  // namespace
}  // namespace kosli
