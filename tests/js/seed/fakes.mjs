// Stand-ins for what the team's functions import (prisma, sendEmail, sendSystemNotification,
// paymentGateway, logError, adminUserId): an in-memory database seeded with a few rows, and a
// recorder of every side effect, which the app serves at GET /recorded for the test to read.
export const recorded = [];

const record = (kind, payload) => {
  recorded.push({ kind, at: Date.now(), ...payload });
};

const DAY = 24 * 60 * 60 * 1000;
const tomorrowAtTen = () => {
  const d = new Date();
  d.setDate(d.getDate() + 1);
  d.setHours(10, 0, 0, 0);
  return d;
};

const users = {
  "user-ana": { id: "user-ana", name: "Ana", email: "ana@example.com" },
  "user-bruno": { id: "user-bruno", name: "Bruno", email: "bruno@example.com" },
  "user-carla": { id: "user-carla", name: "Carla", email: "carla@example.com" },
};
const db = {
  document: {
    "doc-1": { id: "doc-1", userId: "user-ana", type: "DNI", status: "PENDING", number: "30123456" },
    "doc-2": { id: "doc-2", userId: "user-carla", type: "DRIVER_LICENSE", status: "PENDING", number: "28999111" },
    "doc-decided": { id: "doc-decided", userId: "user-ana", type: "DNI", status: "VERIFIED", number: "30123456" },
  },
  payment: {
    "pay-1": { id: "pay-1", amount: 1500, status: "PENDING", tripPassengerId: "tp-1" },
    "pay-declined": { id: "pay-declined", amount: 999999, status: "PENDING", tripPassengerId: "tp-1" },
    "pay-due": { id: "pay-due", amount: 2500, status: "PENDING", tripPassengerId: "tp-1" },
    "pay-done": { id: "pay-done", amount: 1500, status: "APPROVED", tripPassengerId: "tp-1" },
  },
  trip: {
    "trip-1": { id: "trip-1", origin: "Córdoba", destination: "Rosario", status: "ACTIVE",
                departureDate: tomorrowAtTen(), driverUserId: "user-bruno", passengerUserIds: ["user-carla", "user-ana"] },
    "trip-later": { id: "trip-later", origin: "Salta", destination: "Jujuy", status: "ACTIVE",
                    departureDate: new Date(Date.now() + 5 * DAY), driverUserId: "user-bruno", passengerUserIds: [] },
  },
};
const tripPassengers = { "tp-1": { id: "tp-1", passenger: { userId: "user-carla", user: users["user-carla"] } } };

const copy = (value) => (value == null ? null : structuredClone(value));

export const prisma = {
  document: {
    async findUnique({ where, include }) {
      const doc = db.document[where.id];
      if (!doc) return null;
      return copy(include?.user ? { ...doc, user: users[doc.userId] } : doc);
    },
    async update({ where, data }) {
      Object.assign(db.document[where.id], data);
      record("db.update", { table: "document", id: where.id, data });
      return copy(db.document[where.id]);
    },
  },
  payment: {
    async findUnique({ where, include }) {
      const payment = db.payment[where.id];
      if (!payment) return null;
      return copy(include?.tripPassenger ? { ...payment, tripPassenger: tripPassengers[payment.tripPassengerId] } : payment);
    },
    async update({ where, data }) {
      Object.assign(db.payment[where.id], data);
      record("db.update", { table: "payment", id: where.id, data });
      return copy(db.payment[where.id]);
    },
  },
  trip: {
    async findMany({ where }) {
      const { gte, lt } = where.departureDate;
      return Object.values(db.trip)
        .filter((t) => t.status === where.status && t.departureDate >= gte && t.departureDate < lt)
        .map((t) => copy({
          ...t,
          passengers: t.passengerUserIds.map((userId) => ({ passenger: { userId, user: users[userId] } })),
          driverCar: { driver: { userId: t.driverUserId, user: users[t.driverUserId] } },
        }));
    },
  },
};

export async function sendEmail({ to, subject, template, data }) {
  record("email", { to, subject, template, data });
  return { success: true, id: `email-${recorded.length}` };
}

// The team's sendSystemNotification: an ApiResponse; an unknown user is a failed response.
export async function sendSystemNotification(userId, title, message, type, link, metadata) {
  if (!users[userId]) {
    return { success: false, error: { message: `User ${userId} not found` } };
  }
  record("notification", { userId, title, message, type, link, metadata });
  return { success: true, data: { userId, title } };
}

// A sandbox gateway: amounts over 100,000 are declined.
export const paymentGateway = {
  async process({ amount, currency }) {
    record("gateway", { amount, currency });
    const success = amount <= 100000;
    return { success, transactionId: success ? `tx-${amount}-${currency}` : null };
  },
};

export async function logError({ message, context }) {
  record("error-log", { message, context });
}

export const adminUserId = "user-bruno";
