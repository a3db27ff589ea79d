// A minimal test harness: CHECK records a failure and carries on; main returns
// the failure count so CTest reports the test as failed.
#pragma once

#include <cstdio>
#include <string>

namespace testing_support {
inline int failures = 0;
}

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            ++testing_support::failures;                                                   \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);  \
        }                                                                                  \
    } while (0)

#define CHECK_MSG(cond, msg)                                                                             \
    do {                                                                                                 \
        if (!(cond)) {                                                                                   \
            ++testing_support::failures;                                                                 \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s (%s)\n", __FILE__, __LINE__, #cond,            \
                         std::string(msg).c_str());                                                      \
        }                                                                                                \
    } while (0)
