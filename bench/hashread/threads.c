/* XXH3-128 of a file on several threads (analysis of the commit target, BENCHMARKS.md):
 *   cc -O3 -mavx2 -o threads bench/hashread/threads.c -lpthread
 *   ./threads FILE MODE THREADS CHUNK_KIB
 * MODE 0: through a map; 1: pread into a CHUNK_KIB buffer per thread; 2: a map, each chunk
 * populated first (MADV_POPULATE_READ); 3: a MAP_POPULATE map. Each thread hashes its share of
 * the file; prints the wall time of mapping, hashing and unmapping and the process's CPU time. */
#define _GNU_SOURCE
#include <immintrin.h>
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#define XXH_INLINE_ALL
#define XXH_VECTOR XXH_AVX2
#include <xxhash.h>
#pragma clang attribute pop
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <pthread.h>
#include <time.h>
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e3+t.tv_nsec/1e6;}
static int mode; static int fd; static size_t size; static unsigned char *base; static int nth; static size_t chunk;
static volatile uint64_t sink;
typedef struct {size_t a,b;} R;
static void *work(void *arg){ R *r=arg; size_t a=r->a,b=r->b;
  if(mode==0||mode==2||mode==3){ // mmap hash (2: populate chunk first, 3: MAP_POPULATE done)
    XXH3_state_t *s=XXH3_createState(); XXH3_128bits_reset(s);
    for(size_t o=a;o<b;o+=chunk){ size_t n=o+chunk<b?chunk:b-o;
      if(mode==2) madvise(base+o,n,MADV_POPULATE_READ);
      XXH3_128bits_update(s,base+o,n);} sink+=XXH3_128bits_digest(s).low64; XXH3_freeState(s);
  } else if(mode==1){ // pread
    unsigned char *buf=aligned_alloc(4096,chunk); XXH3_state_t *s=XXH3_createState(); XXH3_128bits_reset(s);
    for(size_t o=a;o<b;o+=chunk){ size_t n=o+chunk<b?chunk:b-o; ssize_t g=pread(fd,buf,n,o); if(g!=(ssize_t)n)abort();
      XXH3_128bits_update(s,buf,n);} sink+=XXH3_128bits_digest(s).low64; free(buf); XXH3_freeState(s);
  }
  return 0;}
int main(int c,char**v){ mode=atoi(v[2]); nth=atoi(v[3]); chunk=atol(v[4])*1024;
  double t0=now(); struct rusage u0,u1; getrusage(RUSAGE_SELF,&u0);
  fd=open(v[1],O_RDONLY); struct stat st; fstat(fd,&st); size=st.st_size;
  if(mode!=1){ base=mmap(0,size,PROT_READ,MAP_PRIVATE|(mode==3?MAP_POPULATE:0),fd,0);}
  double t1=now();
  pthread_t t[16]; R r[16]; size_t per=(size/nth+4095)&~4095UL;
  for(int i=0;i<nth;i++){ r[i].a=i*per; r[i].b=(i+1)*per<size?(i+1)*per:size; pthread_create(&t[i],0,work,&r[i]);}
  for(int i=0;i<nth;i++) pthread_join(t[i],0);
  double t2=now(); if(base) munmap(base,size); double t3=now(); getrusage(RUSAGE_SELF,&u1);
  double cpu=(u1.ru_utime.tv_sec-u0.ru_utime.tv_sec)*1e3+(u1.ru_utime.tv_usec-u0.ru_utime.tv_usec)/1e3+(u1.ru_stime.tv_sec-u0.ru_stime.tv_sec)*1e3+(u1.ru_stime.tv_usec-u0.ru_stime.tv_usec)/1e3;
  printf("mode %d th %d chunk %zuK: map %.1f hash %.1f unmap %.1f total %.1f ms cpu %.1f ms\n",mode,nth,chunk/1024,t1-t0,t2-t1,t3-t2,t3-t0,cpu);
}
