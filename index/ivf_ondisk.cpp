/* ivf_ondisk.cpp — the C++ side of the on-disk IVF index (index/ivf.c): copies of a trained IVF
 * with empty lists, the merge of parts' inverted lists into one FAISS OnDiskInvertedLists file,
 * reading an index file whose lists live beside it, and the checks of a loaded lists table.
 *
 * FAISS's C API has none of this, and this file is compiled whether or not the system has a
 * libfaiss_c (faiss_c_api.cpp is not), so it reports errors through a caller's buffer rather
 * than faiss_get_last_error(). No exception crosses into C.
 */
#include "faiss_guard.h"
#include "ivf_internal.h"

#include <faiss/IndexIVF.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>
#include <faiss/invlists/InvertedLists.h>
#include <faiss/invlists/OnDiskInvertedLists.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

using raddino_faiss_guard::guarded;
using raddino_faiss_guard::set_error;

const faiss::Index *cxx(const FaissIndex *index)
{
    return reinterpret_cast<const faiss::Index *>(index);
}

/* The IVF of an index made by index_factory("IVF..."): the top level itself. */
const faiss::IndexIVF *top_ivf(const FaissIndex *index)
{
    const faiss::IndexIVF *ivf = dynamic_cast<const faiss::IndexIVF *>(cxx(index));
    if (!ivf) throw std::runtime_error("not an IVF index (an on-disk index needs type IVF...)");
    return ivf;
}

/* A copy of `src` (trained quantizer, codec) with empty in-memory lists. Serialising is the one
 * copy FAISS offers for every IVF type; lists on disk are mapped read-only meanwhile and
 * dropped, so `src` is only read. */
faiss::IndexIVF *empty_copy(const FaissIndex *src)
{
    const faiss::IndexIVF *ivf = top_ivf(src);
    faiss::VectorIOWriter w;
    faiss::write_index(ivf, &w);
    faiss::VectorIOReader r;
    r.data.swap(w.data);
    faiss::Index *copy = faiss::read_index(&r, faiss::IO_FLAG_READ_ONLY);
    faiss::IndexIVF *out = dynamic_cast<faiss::IndexIVF *>(copy);
    if (!out) {
        delete copy;
        throw std::runtime_error("copy of the IVF index is not an IVF index");
    }
    out->replace_invlists(new faiss::ArrayInvertedLists(out->nlist, out->code_size), true);
    out->ntotal = 0;
    return out;
}

} // namespace

extern "C" {

int index_ivf_describe(const FaissIndex *index, size_t *nlist, size_t *code_size, int *on_disk,
                       const char **lists_file, uint64_t *lists_bytes)
{
    const faiss::IndexIVF *ivf = dynamic_cast<const faiss::IndexIVF *>(cxx(index));
    if (!ivf) return 0;
    if (nlist) *nlist = ivf->nlist;
    if (code_size) *code_size = ivf->code_size;
    auto *od = dynamic_cast<const faiss::OnDiskInvertedLists *>(ivf->invlists);
    if (on_disk) *on_disk = od != nullptr;
    if (lists_file) *lists_file = od ? od->filename.c_str() : nullptr;
    if (lists_bytes) *lists_bytes = od ? od->totsize : 0;
    return 1;
}

int index_ivf_empty_copy(const FaissIndex *src, FaissIndex **out, char *err, size_t err_size)
{
    *out = nullptr;
    return guarded(err, err_size, [&] {
        *out = reinterpret_cast<FaissIndex *>(static_cast<faiss::Index *>(empty_copy(src)));
    });
}

/* Writes all of buf at offset, or throws. */
static void write_at(int fd, const void *buf, size_t size, off_t offset, const char *path)
{
    const char *p = static_cast<const char *>(buf);
    while (size > 0) {
        ssize_t w = pwrite(fd, p, size, offset);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) throw std::runtime_error(std::string(path) + ": " + std::strerror(w < 0 ? errno : EIO));
        p += w;
        size -= (size_t)w;
        offset += w;
    }
}

int index_ivf_merge_ondisk(const FaissIndex *trained, FaissIndex *const *parts, size_t n_parts,
                           const char *lists_path, FaissIndex **out, char *err, size_t err_size)
{
    *out = nullptr;
    return guarded(err, err_size, [&] {
        faiss::IndexIVF *merged = empty_copy(trained);
        int fd = -1;
        std::string tmp_name;
        try {
            std::vector<const faiss::InvertedLists *> ils;
            faiss::Index::idx_t ntotal = 0;
            for (size_t i = 0; i < n_parts; i++) {
                const faiss::IndexIVF *part = top_ivf(parts[i]);
                /* Same type, dimension, lists and codes, and (FAISS's expensive check, on by
                 * default) the same coarse centroids: parts of one training only. */
                merged->check_compatible_for_merge(*part);
                ils.push_back(part->invlists);
                ntotal += part->ntotal;
            }
            if (ntotal == 0) throw std::runtime_error("no vectors to merge");
            /* The file in OnDiskInvertedLists's layout, written here rather than by its
             * merge_from, which grows the file through a writable mapping and prints a line to
             * stdout (the commands' output): list l at lists[l].offset, its codes
             * (capacity x code_size bytes) then its ids (capacity x 8), lists end to end. */
            size_t nlist = merged->nlist, cs = merged->code_size;
            size_t entry = cs + sizeof(faiss::Index::idx_t);
            auto *od = new faiss::OnDiskInvertedLists(nlist, cs, lists_path);
            merged->replace_invlists(od, true);
            size_t total = 0;
            for (size_t l = 0; l < nlist; l++) {
                size_t n = 0;
                for (auto *il : ils) n += il->list_size(l);
                if (n == 0) continue;   /* an empty list keeps FAISS's "no offset" */
                od->lists[l].size = n;
                od->lists[l].capacity = n;
                od->lists[l].offset = total;
                total += n * entry;
            }
            /* Written under a temporary name and renamed: a process that maps an older file of
             * this name keeps reading that one, never a file changing under it. */
            std::string tmp = std::string(lists_path) + ".tmp.XXXXXX";
            fd = mkstemp(&tmp[0]);
            if (fd < 0) throw std::runtime_error(std::string(lists_path) + ": " + std::strerror(errno));
            tmp_name = tmp;
            if (fchmod(fd, 0644) != 0)
                throw std::runtime_error(std::string(lists_path) + ": " + std::strerror(errno));
            for (size_t l = 0; l < nlist; l++) {
                const auto &dst = od->lists[l];
                size_t at = 0;
                for (auto *il : ils) {
                    size_t n = il->list_size(l);
                    if (n == 0) continue;
                    faiss::InvertedLists::ScopedCodes codes(il, l);
                    faiss::InvertedLists::ScopedIds ids(il, l);
                    write_at(fd, codes.get(), n * cs, (off_t)(dst.offset + at * cs), lists_path);
                    write_at(fd, ids.get(), n * sizeof(faiss::Index::idx_t),
                             (off_t)(dst.offset + dst.capacity * cs +
                                     at * sizeof(faiss::Index::idx_t)),
                             lists_path);
                    at += n;
                }
            }
            /* Durable before an index file that names it is saved. */
            if (fsync(fd) != 0 || close(fd) != 0) {
                fd = -1;
                throw std::runtime_error(std::string(lists_path) + ": " + std::strerror(errno));
            }
            fd = -1;
            if (rename(tmp_name.c_str(), lists_path) != 0)
                throw std::runtime_error(std::string(lists_path) + ": " + std::strerror(errno));
            tmp_name.clear();
            od->totsize = total;
            od->read_only = true;   /* mapped read-only: nothing writes it after this */
            od->do_mmap();
            merged->ntotal = ntotal;
        } catch (...) {
            if (fd >= 0) close(fd);
            if (!tmp_name.empty()) unlink(tmp_name.c_str());
            delete merged;
            throw;
        }
        *out = reinterpret_cast<FaissIndex *>(static_cast<faiss::Index *>(merged));
    });
}

int index_read_faiss_at(FILE *f, FaissIndex **out, char *err, size_t err_size)
{
    *out = nullptr;
    return guarded(err, err_size, [&] {
        faiss::FileIOReader reader(f);
        *out = reinterpret_cast<FaissIndex *>(
                faiss::read_index(&reader, faiss::IO_FLAG_READ_ONLY));
    });
}

int index_ivf_set_lists_name(FaissIndex *index, const char *name)
{
    auto *ivf = dynamic_cast<faiss::IndexIVF *>(reinterpret_cast<faiss::Index *>(index));
    auto *od = ivf ? dynamic_cast<faiss::OnDiskInvertedLists *>(ivf->invlists) : nullptr;
    if (!od) return -1;
    try {
        od->filename = name;
    } catch (...) {
        return -3;
    }
    return 0;
}

int index_read_ondisk(const void *bytes, size_t size, const char *stored_name,
                      const char *lists_path, FaissIndex **out, char *err, size_t err_size)
{
    *out = nullptr;
    return guarded(err, err_size, [&] {
        /* Saved indexes name their lists file by its bare name (index_io.c), a string FAISS
         * writes as its length (8 bytes) and its bytes. It is replaced by the path in the
         * index file's folder before FAISS reads it, so FAISS maps the right file; FAISS's own
         * IO_FLAG_ONDISK_SAME_DIR does this too but prints a line on stdout, the commands'
         * output. The bytes were checksummed by the caller. */
        const unsigned char *b = static_cast<const unsigned char *>(bytes);
        uint64_t len = std::strlen(stored_name);
        size_t at = (size_t)-1, found = 0;
        for (size_t i = 0; i + 8 + len <= size; i++) {
            uint64_t v;
            std::memcpy(&v, b + i, 8);
            if (v == len && std::memcmp(b + i + 8, stored_name, len) == 0) {
                at = i;
                found++;
            }
        }
        if (found != 1) throw std::runtime_error("the index does not name its lists file once");
        uint64_t new_len = std::strlen(lists_path);
        faiss::VectorIOReader r;
        r.data.reserve(size - len + new_len);
        r.data.insert(r.data.end(), b, b + at);
        const unsigned char *nl = reinterpret_cast<const unsigned char *>(&new_len);
        r.data.insert(r.data.end(), nl, nl + 8);
        r.data.insert(r.data.end(), lists_path, lists_path + new_len);
        r.data.insert(r.data.end(), b + at + 8 + len, b + size);
        faiss::Index *index = faiss::read_index(&r, faiss::IO_FLAG_READ_ONLY);
        if (r.rp != r.data.size()) {
            delete index;
            throw std::runtime_error("index bytes left unread");
        }
        *out = reinterpret_cast<FaissIndex *>(index);
    });
}

int index_ivf_check_lists(const FaissIndex *index, char *err, size_t err_size)
{
    const faiss::IndexIVF *ivf = dynamic_cast<const faiss::IndexIVF *>(cxx(index));
    auto *od = ivf ? dynamic_cast<const faiss::OnDiskInvertedLists *>(ivf->invlists) : nullptr;
    if (!od) return 0;
    size_t entry = od->code_size + sizeof(faiss::Index::idx_t), total = 0;
    for (size_t i = 0; i < od->lists.size(); i++) {
        const auto &l = od->lists[i];
        if (l.size == 0 && l.capacity == 0) continue;   /* empty: no place in the file */
        if (l.size > l.capacity || l.capacity > od->totsize / (entry ? entry : 1) ||
            l.offset > od->totsize || l.capacity * entry > od->totsize - l.offset) {
            set_error(err, err_size, "inverted list outside the lists file");
            return -2;
        }
        total += l.size;
    }
    if (od->lists.size() != ivf->nlist || total != (size_t)ivf->ntotal) {
        set_error(err, err_size, "inverted lists do not add up to the index's vectors");
        return -2;
    }
    return 0;
}

} /* extern "C" */
