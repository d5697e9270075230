/* faiss_guard.h — how the C++ files of index/ (ivf_coarse.cpp, ivf_ondisk.cpp) hand FAISS's
 * exceptions to C: guarded() runs a body, turns what it throws into a negative code and a
 * one-line message without FAISS's "Error in <function> at <file>:" prefix. C++ only, private
 * to index/. */
#ifndef RADDINO_FAISS_GUARD_H
#define RADDINO_FAISS_GUARD_H

#include <cstdio>
#include <cstring>
#include <exception>
#include <new>

namespace raddino_faiss_guard {

inline void set_error(char *err, size_t size, const char *msg)
{
    if (!err || size == 0) return;
    /* FAISS messages look like "Error in void faiss::f(...) at file.cpp:12: the reason". */
    const char *reason = std::strstr(msg, "Error in ") == msg ? std::strstr(msg, ": ") : nullptr;
    std::snprintf(err, size, "%s", reason ? reason + 2 : msg);
    for (char *p = err; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
}

/* 0 when body returned; -3 out of memory, -2 another exception, -1 anything else thrown. */
template <typename F>
int guarded(char *err, size_t size, F body)
{
    try {
        body();
        return 0;
    } catch (const std::bad_alloc &) {
        set_error(err, size, "out of memory");
        return -3;
    } catch (const std::exception &e) {
        set_error(err, size, e.what());
        return -2;
    } catch (...) {
        set_error(err, size, "unknown error");
        return -1;
    }
}

}   // namespace raddino_faiss_guard

#endif
