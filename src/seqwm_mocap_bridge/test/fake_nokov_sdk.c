/* A stand-in for libnokov_sdk.so, built by the tests: the same C interface and data layout as
 * sources/nokov_layout.py describes, so the ctypes binding, the callback from a foreign thread,
 * the data descriptions and the reconnect logic run against real compiled C.
 * It is NOT the vendor's library: its layout is our reading of the SDK header, which is exactly
 * what stub_layout() lets the tests compare with ctypes' idea of the same declarations. */
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_MODELS 200
#define N_RIGIDBODIES 1000
#define NAME_LEN 256
#define N_SKELETONS 100
#define N_LABELED 1000
#define N_ANALOG 32

typedef float Point3[3];
typedef struct { char szName[NAME_LEN]; int nMarkers; Point3 *Markers; } MarkerSet;
typedef struct {
  int ID;
  float x, y, z, qx, qy, qz, qw;
  int nMarkers;
  Point3 *Markers;
  int *MarkerIDs;
  float *MarkerSizes;
  float MeanError;
  short params;
} RigidBody;
typedef struct { int skeletonID; int nRigidBodies; RigidBody *RigidBodyData; } Skeleton;
typedef struct { int ID; float x, y, z, size; short params; } LabeledMarker;
typedef struct {
  int iFrame;
  int nMarkerSets;
  MarkerSet MocapData[N_MODELS];
  int nOtherMarkers;
  Point3 *OtherMarkers;
  int nRigidBodies;
  RigidBody RigidBodies[N_RIGIDBODIES];
  int nSkeletons;
  Skeleton Skeletons[N_SKELETONS];
  int nLabeledMarkers;
  LabeledMarker LabeledMarkers[N_LABELED];
  int nAnalogdatas;
  float Analogdata[N_ANALOG];
  float fLatency;
  unsigned int Timecode;
  unsigned int TimecodeSubframe;
  long long iTimeStamp;
  short params;
} Frame;
typedef struct {
  char szName[NAME_LEN];
  int ID, parentID;
  float offsetx, offsety, offsetz, qx, qy, qz, qw;
} BodyDescription;
typedef struct { int type; union { void *other; BodyDescription *body; } Data; } Description;
typedef struct { int nDataDescriptions; Description arrDataDescriptions[N_MODELS]; } Descriptions;

typedef void (*DataCallback)(Frame *frame, void *user);

typedef struct {
  DataCallback callback;
  void *user;
  pthread_t thread;
  int running;
  volatile int stop;
} Client;

static int g_fail_first = 0, g_frames = 10, g_attempts = 0, g_next_frame = 1000;
static float g_latency = 0.0f;
static BodyDescription g_bodies[2];
static Descriptions g_descriptions;

void stub_configure(int fail_first, int frames_per_connection, float latency) {
  g_fail_first = fail_first;
  g_frames = frames_per_connection;
  g_latency = latency;
  g_attempts = 0;
}

void stub_layout(size_t *out) {
  out[0] = sizeof(Frame);
  out[1] = offsetof(Frame, RigidBodies);
  out[2] = offsetof(Frame, fLatency);
  out[3] = offsetof(Frame, iTimeStamp);
  out[4] = offsetof(Frame, params);
  out[5] = sizeof(RigidBody);
  out[6] = offsetof(RigidBody, params);
  out[7] = sizeof(Descriptions);
  out[8] = sizeof(BodyDescription);
}

static void *stream(void *arg) {
  Client *c = (Client *)arg;
  Frame *f = (Frame *)calloc(1, sizeof(Frame));
  struct timespec period = {0, 5 * 1000 * 1000};
  for (int i = 0; i < g_frames && !c->stop; ++i) {
    f->iFrame = g_next_frame++;
    f->fLatency = g_latency;
    f->iTimeStamp = (long long)f->iFrame * 5000;
    f->nRigidBodies = 2;
    RigidBody *a = &f->RigidBodies[0], *b = &f->RigidBodies[1];
    a->ID = 1; a->x = 1000.0f + (float)i; a->y = 0.0f; a->z = 300.0f;
    a->qx = 0.0f; a->qy = 0.0f; a->qz = 0.0f; a->qw = 1.0f;
    b->ID = 7; b->x = 2000.0f; b->y = 0.0f; b->z = 250.0f;
    b->qx = 0.0f; b->qy = 0.0f; b->qz = 0.0f; b->qw = 1.0f;
    if (c->callback) c->callback(f, c->user);
    nanosleep(&period, NULL);
  }
  free(f);
  return NULL;
}

int CreateClient(void **out) {
  Client *c = (Client *)calloc(1, sizeof(Client));
  *out = c;
  return c ? 0 : 1;
}

int SetDataCallback(void *client, DataCallback cb, void *user) {
  Client *c = (Client *)client;
  c->callback = cb;
  c->user = user;
  return 0;
}

int Initialize(void *client, const char *server) {
  Client *c = (Client *)client;
  (void)server;
  if (g_attempts++ < g_fail_first) return 3; /* ErrorCode_Network */
  c->stop = 0;
  c->running = pthread_create(&c->thread, NULL, stream, c) == 0;
  return c->running ? 0 : 1;
}

int GetDataDescriptions(void *client, Descriptions **out) {
  (void)client;
  memset(&g_descriptions, 0, sizeof g_descriptions);
  memset(g_bodies, 0, sizeof g_bodies);
  strcpy(g_bodies[0].szName, "go2w_1"); g_bodies[0].ID = 1; g_bodies[0].qw = 1.0f;
  strcpy(g_bodies[1].szName, "box"); g_bodies[1].ID = 7; g_bodies[1].qw = 1.0f;
  g_descriptions.nDataDescriptions = 3;
  g_descriptions.arrDataDescriptions[0].type = 0; /* a marker set: must be skipped */
  g_descriptions.arrDataDescriptions[1].type = 1;
  g_descriptions.arrDataDescriptions[1].Data.body = &g_bodies[0];
  g_descriptions.arrDataDescriptions[2].type = 1;
  g_descriptions.arrDataDescriptions[2].Data.body = &g_bodies[1];
  *out = &g_descriptions;
  return 0;
}

int Uninitialize(void *client) {
  Client *c = (Client *)client;
  if (c->running) {
    c->stop = 1;
    pthread_join(c->thread, NULL);
    c->running = 0;
  }
  return 0;
}

int DestroyClient(void *client) {
  free(client);
  return 0;
}
