// The eight functions of Tengo Lugar's "Background Jobs Patterns" document
// (../../../../shared/seed/000_142cdc320329af70.txt in the session; docs/tengo-lugar.md), copied
// as written. What is not theirs: the imports point at ./fakes.mjs (an in-memory prisma and a
// recorder of emails and notifications); the welcome sequence's "45s" is WELCOME_EMAIL_DELAY,
// read at the top (SEED_SLEEP, default "45s"); `schedulePaymentReminder` lost its TypeScript
// annotations; and the two bodies the document leaves out ("Function implementation",
// "Function that might fail") are ours, written like the Python port's (actors/).
import { NonRetriableError } from "inngest";
import { inngest } from "./inngest.mjs";
import {
  adminUserId, logError, paymentGateway, prisma, sendEmail, sendSystemNotification,
} from "./fakes.mjs";

const WELCOME_EMAIL_DELAY = process.env.SEED_SLEEP || "45s";

export const sendVerificationEmail = inngest.createFunction(
  { id: "send-verification-email" },
  { event: "document-verification-email" },
  async ({ event, step }) => {
    const { userId, email, documentId, type } = event.data;

    // Step 1: Get document details
    const document = await step.run("get-document", async () => {
      return await prisma.document.findUnique({
        where: { id: documentId },
        include: { user: true }
      });
    });

    if (!document) {
      throw new Error(`Document ${documentId} not found`);
    }

    // Step 2: Send email
    await step.run("send-email", async () => {
      return await sendEmail({
        to: email,
        subject: "Document Verification Required",
        template: "document-verification",
        data: {
          userName: document.user.name,
          documentType: type,
          documentId: documentId
        }
      });
    });

    return { success: true, documentId };
  }
);

export const processPayment = inngest.createFunction(
  { id: "process-payment" },
  { event: "payment.submitted" },
  async ({ event, step }) => {
    const { paymentId, userId, amount } = event.data;

    // Step 1: Validate payment
    const payment = await step.run("validate-payment", async () => {
      const payment = await prisma.payment.findUnique({
        where: { id: paymentId }
      });

      if (!payment) {
        throw new Error("Payment not found");
      }

      return payment;
    });

    // Step 2: Process with payment gateway
    const gatewayResult = await step.run("process-gateway", async () => {
      return await paymentGateway.process({
        amount: payment.amount,
        currency: "ARS"
      });
    });

    // Step 3: Update payment status
    await step.run("update-status", async () => {
      return await prisma.payment.update({
        where: { id: paymentId },
        data: {
          status: gatewayResult.success ? "APPROVED" : "REJECTED",
          gatewayTransactionId: gatewayResult.transactionId
        }
      });
    });

    // Step 4: Send notification
    await step.run("send-notification", async () => {
      return await sendSystemNotification(
        userId,
        gatewayResult.success ? "Payment Approved" : "Payment Rejected",
        gatewayResult.success
          ? "Your payment has been approved"
          : "Your payment was rejected. Please try again.",
        "payment_update",
        `/payments/${paymentId}`
      );
    });

    return { success: true, paymentId, status: gatewayResult.success };
  }
);

export const dailyTripReminder = inngest.createFunction(
  {
    id: "daily-trip-reminder",
    retries: 3
  },
  { cron: "0 9 * * *" }, // Every day at 9 AM
  async ({ step }) => {
    // Get trips happening tomorrow
    const tomorrow = new Date();
    tomorrow.setDate(tomorrow.getDate() + 1);
    tomorrow.setHours(0, 0, 0, 0);

    const nextDay = new Date(tomorrow);
    nextDay.setDate(nextDay.getDate() + 1);

    const trips = await step.run("get-tomorrow-trips", async () => {
      return await prisma.trip.findMany({
        where: {
          departureDate: {
            gte: tomorrow,
            lt: nextDay
          },
          status: "ACTIVE"
        },
        include: {
          passengers: {
            include: {
              passenger: {
                include: { user: true }
              }
            }
          },
          driverCar: {
            include: {
              driver: {
                include: { user: true }
              }
            }
          }
        }
      });
    });

    // Send reminder to each participant
    for (const trip of trips) {
      await step.run(`send-reminder-trip-${trip.id}`, async () => {
        // Notify driver
        await sendSystemNotification(
          trip.driverCar.driver.userId,
          "Trip Tomorrow",
          `You have a trip from ${trip.origin} to ${trip.destination} tomorrow`,
          "trip_reminder",
          `/trips/${trip.id}`
        );

        // Notify passengers
        for (const passenger of trip.passengers) {
          await sendSystemNotification(
            passenger.passenger.userId,
            "Trip Tomorrow",
            `Your trip from ${trip.origin} to ${trip.destination} is tomorrow`,
            "trip_reminder",
            `/trips/${trip.id}`
          );
        }
      });
    }

    return { processedTrips: trips.length };
  }
);

export async function schedulePaymentReminder(paymentId, dueDate) {
  // Schedule job to run at specific time
  await inngest.send({
    name: "payment-reminder",
    data: { paymentId },
    ts: dueDate.getTime() // Execute at this timestamp
  });
}

// Function that will run at scheduled time
export const paymentReminder = inngest.createFunction(
  { id: "payment-reminder" },
  { event: "payment-reminder" },
  async ({ event, step }) => {
    const { paymentId } = event.data;

    const payment = await step.run("get-payment", async () => {
      return await prisma.payment.findUnique({
        where: { id: paymentId },
        include: {
          tripPassenger: {
            include: {
              passenger: { include: { user: true } }
            }
          }
        }
      });
    });

    if (payment.status !== "PENDING") {
      return { skipped: true, reason: "Payment already processed" };
    }

    await step.run("send-reminder", async () => {
      return await sendSystemNotification(
        payment.tripPassenger.passenger.userId,
        "Payment Reminder",
        "You have a pending payment. Please complete it soon.",
        "payment_reminder",
        `/payments/${paymentId}`
      );
    });

    return { success: true, paymentId };
  }
);

export const sendWelcomeSequence = inngest.createFunction(
  { id: "welcome-sequence" },
  { event: "user.registered" },
  async ({ event, step }) => {
    const { userId, email, name } = event.data;

    // Email 1: Welcome email
    await step.run("send-welcome-email", async () => {
      return await sendEmail({
        to: email,
        subject: "Welcome to Tengo Lugar!",
        template: "welcome",
        data: { name }
      });
    });

    // CRITICAL: Add delay between emails to avoid spam classification
    await step.sleep("delay-after-welcome", WELCOME_EMAIL_DELAY);

    // Email 2: Getting started guide
    await step.run("send-guide-email", async () => {
      return await sendEmail({
        to: email,
        subject: "Getting Started with Tengo Lugar",
        template: "getting-started",
        data: { name }
      });
    });

    // Another delay
    await step.sleep("delay-after-guide", WELCOME_EMAIL_DELAY);

    // Email 3: Feature highlights
    await step.run("send-features-email", async () => {
      return await sendEmail({
        to: email,
        subject: "Discover Tengo Lugar Features",
        template: "features",
        data: { name }
      });
    });

    return { success: true, emailsSent: 3 };
  }
);

export const notifyTripUpdate = inngest.createFunction(
  { id: "notify-trip-update" },
  { event: "trip.status-changed" },
  async ({ event, step }) => {
    const { tripId, newStatus, userId } = event.data;

    // Use sendSystemNotification instead of notifyUser
    const result = await step.run("send-notification", async () => {
      return await sendSystemNotification(
        userId,
        'Trip Status Updated',
        `Your trip status changed to ${newStatus}`,
        'trip_update',
        `/trips/${tripId}`,
        { tripId, status: newStatus }
      );
    });

    // Always check result
    if (!result.success) {
      throw new Error(`Failed to send notification: ${result.error?.message}`);
    }

    return { success: true };
  }
);

// The document gives only this function's options and trigger ("Function implementation"):
// the body is ours — get the document, skip one already decided, mark it VERIFIED, notify.
export const processDocument = inngest.createFunction(
  {
    id: "process-document",
    retries: 3, // Retry up to 3 times
  },
  { event: "document.uploaded" },
  async ({ event, step }) => {
    const { documentId } = event.data;
    const document = await step.run("get-document", async () => {
      return await prisma.document.findUnique({ where: { id: documentId } });
    });
    if (!document) {
      throw new NonRetriableError(`Document ${documentId} not found`);
    }
    if (document.status === "VERIFIED" || document.status === "REJECTED") {
      return { skipped: true, reason: "Document already processed" };
    }
    const updated = await step.run("update-status", async () => {
      return await prisma.document.update({ where: { id: documentId }, data: { status: "VERIFIED" } });
    });
    await step.run("send-notification", async () => {
      const result = await sendSystemNotification(
        document.userId, "Document Verified", "Your document has been verified",
        "document_update", `/documents/${documentId}`);
      if (!result.success) throw new Error(result.error?.message);
      return result;
    });
    return { success: true, documentId, status: updated.status };
  }
);

// The document gives the options and the onFailure handler ("Function that might fail"): the
// body is ours, as in the Python port — one step that fails while the event asks it to
// (`shouldFail`: every attempt; `failTimes`: that many attempts, then it succeeds).
export const unstableOperation = inngest.createFunction(
  {
    id: "unstable-operation",
    onFailure: async ({ error, event }) => {
      // Log failure
      await logError({
        message: error.message,
        context: { eventData: event.data }
      });

      // Notify admin
      await sendSystemNotification(
        adminUserId,
        "Job Failed",
        `Job ${event.name} failed: ${error.message}`,
        "system_error",
        "/admin/jobs"
      );
    }
  },
  { event: "unstable.operation" },
  async ({ event, step, attempt }) => {
    // Function that might fail
    return await step.run("unstable-step", async () => {
      if (event.data.shouldFail) {
        throw new Error("the unstable operation failed (shouldFail=true)");
      }
      if (attempt < (event.data.failTimes || 0)) {
        throw new Error(`the unstable operation failed on attempt ${attempt + 1}`);
      }
      return { success: true, attempts: attempt + 1 };
    });
  }
);

export const functions = [
  sendVerificationEmail, processPayment, dailyTripReminder, paymentReminder,
  sendWelcomeSequence, notifyTripUpdate, processDocument, unstableOperation,
];
