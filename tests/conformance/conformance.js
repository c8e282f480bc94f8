// Independent conformance client: ocpp-rpc in strict mode validates every CALLRESULT the CSMS sends against the
// official schemas (ajv-formats ^3, so a timestamp without an offset fails), and every CALL we send as well.
// usage: node conformance.js ws://127.0.0.1:PORT/ocpp [basicAuthPassword]   (exit 0 = all passed)
'use strict';
const { RPCClient } = require('ocpp-rpc');

const [endpoint, password] = process.argv.slice(2);
if (!endpoint) {
  console.error('usage: node conformance.js ws://HOST:PORT/ocpp [password]');
  process.exit(2);
}

let failures = 0;
let passes = 0;
const check = (name, ok, info = '') => {
  console.log(`${ok ? 'PASS' : 'FAIL'} ${name}${info ? ` ${info}` : ''}`);
  if (ok) passes++; else failures++;
};
const now = () => new Date().toISOString();
const minutesAgo = (m) => new Date(Date.now() - m * 60000).toISOString();
const isRfc3339 = (t) => typeof t === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(t);

// One CALL and its checks; a rejected call (CALLERROR, timeout, strict failure) fails the step, not the run.
async function step(cli, name, method, params, verify = () => true) {
  try {
    const result = await cli.call(method, params);
    let ok;
    try { ok = verify(result); } catch (e) { ok = false; }
    check(name, ok === true, ok === true ? '' : JSON.stringify(result));
    return result;
  } catch (e) {
    check(name, false, `${e.rpcErrorCode ?? e.code ?? ''} ${e.message}`);
    return undefined;
  }
}

async function session(protocol, identity, steps) {
  const cli = new RPCClient({
    endpoint, identity, password, protocols: [protocol], strictMode: true, reconnect: false, callTimeoutMs: 5000,
  });
  cli.on('strictValidationFailure', (e) => check(`strict ${e.method} outbound=${e.outbound}`, false, e.error.message));
  cli.on('badMessage', (e) => check(`${protocol} frame from CSMS`, false, e.error?.message));
  let closedBy = null;
  cli.on('close', ({ code, reason }) => { closedBy = closedBy ?? { code, reason }; });
  // CSMS -> charger calls, answered validly so strict mode checks the CSMS's requests too.
  cli.handle('GetConfiguration', () => ({ configurationKey: [], unknownKey: [] }));
  cli.handle('ChangeConfiguration', () => ({ status: 'Accepted' }));
  cli.handle('SetChargingProfile', () => ({ status: 'Accepted' }));
  cli.handle('ClearChargingProfile', () => ({ status: 'Accepted' }));
  cli.handle('TriggerMessage', () => ({ status: 'Accepted' }));
  cli.handle('GetVariables', ({ params }) => ({
    getVariableResult: params.getVariableData.map((d) => ({
      attributeStatus: 'Accepted', attributeValue: '60', component: d.component, variable: d.variable,
    })),
  }));
  cli.handle('SetVariables', ({ params }) => ({
    setVariableResult: params.setVariableData.map((d) => ({
      attributeStatus: 'Accepted', component: d.component, variable: d.variable,
    })),
  }));
  cli.handle('GetBaseReport', () => ({ status: 'Accepted' }));
  try {
    await cli.connect();
    check(`${protocol} subprotocol`, cli.protocol === protocol, String(cli.protocol));
    await steps(cli);
    await new Promise((r) => setTimeout(r, 300)); // let server-initiated CALLs arrive
    check(`${protocol} connection still open`, closedBy === null, JSON.stringify(closedBy));
  } catch (e) {
    check(`${protocol} session`, false, `${e.rpcErrorCode ?? e.code ?? ''} ${e.message}`);
  }
  await cli.close({ awaitPending: true });
}

const status16 = (status) => ({ connectorId: 1, errorCode: 'NoError', status, timestamp: now() });

async function ocpp16(c) {
  await step(c, '1.6 BootNotification', 'BootNotification', {
    chargePointVendor: 'Conformance', chargePointModel: 'ocpp-rpc', chargePointSerialNumber: 'CONF-16-SN',
    firmwareVersion: '1.0.0', meterType: 'AC', iccid: '8901', imsi: '2620',
  }, (r) => r.status === 'Accepted' && r.interval > 0 && isRfc3339(r.currentTime));
  await step(c, '1.6 Heartbeat', 'Heartbeat', {}, (r) => isRfc3339(r.currentTime) && r.currentTime.endsWith('Z'));
  await step(c, '1.6 StatusNotification connector 0', 'StatusNotification',
    { connectorId: 0, errorCode: 'NoError', status: 'Available' }, (r) => Object.keys(r).length === 0);
  await step(c, '1.6 StatusNotification Preparing', 'StatusNotification', {
    ...status16('Preparing'), info: 'cable plugged', vendorId: 'com.example', vendorErrorCode: 'E0',
  });
  await step(c, '1.6 Authorize', 'Authorize', { idTag: 'CONF-TAG-16' }, (r) => r.idTagInfo.status === 'Accepted');
  const start = { connectorId: 1, idTag: 'CONF-TAG-16', meterStart: 1000, timestamp: minutesAgo(30) };
  const started = await step(c, '1.6 StartTransaction', 'StartTransaction', start,
    (r) => Number.isInteger(r.transactionId) && r.idTagInfo.status === 'Accepted');
  if (!started) return;
  const tx = started.transactionId;
  await step(c, '1.6 StartTransaction replay gets the same transactionId', 'StartTransaction', start,
    (r) => r.transactionId === tx);
  await step(c, '1.6 StatusNotification Charging', 'StatusNotification', status16('Charging'));
  const sample = (wh) => ({
    timestamp: now(),
    sampledValue: [
      { value: String(wh), context: 'Sample.Periodic', format: 'Raw', measurand: 'Energy.Active.Import.Register',
        location: 'Outlet', unit: 'Wh' },
      { value: '16.1', measurand: 'Current.Import', phase: 'L1', unit: 'A' },
      { value: '16.0', measurand: 'Current.Import', phase: 'L2', unit: 'A' },
      { value: '15.9', measurand: 'Current.Import', phase: 'L3', unit: 'A' },
      { value: '230.2', measurand: 'Voltage', phase: 'L1-N', unit: 'V' },
      { value: '11.0', measurand: 'Power.Active.Import', unit: 'kW' },
      { value: '32', measurand: 'Current.Offered', unit: 'A' },
      { value: '55', measurand: 'SoC', unit: 'Percent', location: 'EV' },
      { value: '31.5', measurand: 'Temperature', unit: 'Celsius', location: 'Body' },
    ],
  });
  await step(c, '1.6 MeterValues (9 sampled values)', 'MeterValues',
    { connectorId: 1, transactionId: tx, meterValue: [sample(2500), sample(4000)] },
    (r) => Object.keys(r).length === 0);
  await step(c, '1.6 MeterValues without transaction', 'MeterValues',
    { connectorId: 0, meterValue: [{ timestamp: now(), sampledValue: [{ value: '123456' }] }] });
  await step(c, '1.6 StopTransaction with transactionData', 'StopTransaction', {
    transactionId: tx, meterStop: 7000, timestamp: now(), reason: 'EVDisconnected', idTag: 'CONF-TAG-16',
    transactionData: [
      { timestamp: minutesAgo(30), sampledValue: [{ value: '1000', context: 'Transaction.Begin', unit: 'Wh' }] },
      { timestamp: now(), sampledValue: [{ value: '7000', context: 'Transaction.End', unit: 'Wh' }] },
    ],
  }, (r) => r.idTagInfo === undefined || ['Accepted', 'Blocked', 'Expired', 'Invalid'].includes(r.idTagInfo.status));
  await step(c, '1.6 StatusNotification Finishing', 'StatusNotification', status16('Finishing'));
  await step(c, '1.6 DataTransfer', 'DataTransfer', { vendorId: 'com.example', messageId: 'ping', data: 'hello' },
    (r) => ['Accepted', 'Rejected', 'UnknownMessageId', 'UnknownVendorId'].includes(r.status));
  await step(c, '1.6 FirmwareStatusNotification', 'FirmwareStatusNotification', { status: 'Installed' });
  await step(c, '1.6 DiagnosticsStatusNotification', 'DiagnosticsStatusNotification', { status: 'Uploaded' });
  // OCPP 1.6 security extension (whitepaper edition 2)
  await step(c, '1.6 SecurityEventNotification', 'SecurityEventNotification',
    { type: 'StartupOfTheDevice', timestamp: now(), techInfo: 'conformance run' });
  await step(c, '1.6 LogStatusNotification', 'LogStatusNotification', { status: 'Uploaded', requestId: 1 });
  await step(c, '1.6 SignedFirmwareStatusNotification', 'SignedFirmwareStatusNotification',
    { status: 'SignatureVerified', requestId: 2 });
  await step(c, '1.6 SignCertificate', 'SignCertificate',
    { csr: '-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----' },
    (r) => ['Accepted', 'Rejected'].includes(r.status));
  await step(c, '1.6 Heartbeat at the end', 'Heartbeat', {}, (r) => isRfc3339(r.currentTime));
}

const idToken = { idToken: 'CONF-TAG-201', type: 'ISO14443' };
const evse = { id: 1, connectorId: 1 };
const empty = (r) => Object.keys(r).length === 0;

function sampled201(wh, context) {
  return {
    timestamp: now(),
    sampledValue: [
      { value: wh, context, measurand: 'Energy.Active.Import.Register', location: 'Outlet',
        unitOfMeasure: { unit: 'Wh', multiplier: 0 } },
      { value: 16.1, context, measurand: 'Current.Import', phase: 'L1', unitOfMeasure: { unit: 'A' } },
      { value: 16.0, context, measurand: 'Current.Import', phase: 'L2', unitOfMeasure: { unit: 'A' } },
      { value: 230.2, context, measurand: 'Voltage', phase: 'L1-N', unitOfMeasure: { unit: 'V' } },
      { value: 11.0, context, measurand: 'Power.Active.Import', unitOfMeasure: { unit: 'W', multiplier: 3 } },
      { value: 55, context, measurand: 'SoC', location: 'EV', unitOfMeasure: { unit: 'Percent' } },
    ],
  };
}

async function ocpp201(c) {
  await step(c, '2.0.1 BootNotification', 'BootNotification', {
    reason: 'PowerUp',
    chargingStation: {
      model: 'ocpp-rpc', vendorName: 'Conformance', serialNumber: 'CONF-201-SN', firmwareVersion: '2.0.0',
      modem: { iccid: '8901', imsi: '2620' },
    },
  }, (r) => r.status === 'Accepted' && r.interval > 0 && isRfc3339(r.currentTime));
  await step(c, '2.0.1 Heartbeat', 'Heartbeat', {}, (r) => isRfc3339(r.currentTime) && r.currentTime.endsWith('Z'));
  await step(c, '2.0.1 StatusNotification', 'StatusNotification',
    { timestamp: now(), connectorStatus: 'Available', evseId: 1, connectorId: 1 }, empty);
  await step(c, '2.0.1 Authorize', 'Authorize', { idToken }, (r) => r.idTokenInfo.status === 'Accepted');
  await step(c, '2.0.1 StatusNotification Occupied', 'StatusNotification',
    { timestamp: now(), connectorStatus: 'Occupied', evseId: 1, connectorId: 1 }, empty);
  const transactionId = `CONF-TX-${Date.now()}`;
  await step(c, '2.0.1 TransactionEvent Started', 'TransactionEvent', {
    eventType: 'Started', timestamp: minutesAgo(30), triggerReason: 'Authorized', seqNo: 0,
    transactionInfo: { transactionId, chargingState: 'EVConnected' }, idToken, evse,
    meterValue: [sampled201(1000, 'Transaction.Begin')],
  }, (r) => r.idTokenInfo === undefined || r.idTokenInfo.status === 'Accepted');
  await step(c, '2.0.1 TransactionEvent Updated', 'TransactionEvent', {
    eventType: 'Updated', timestamp: now(), triggerReason: 'MeterValuePeriodic', seqNo: 1,
    transactionInfo: { transactionId, chargingState: 'Charging' },
    meterValue: [sampled201(2500, 'Sample.Periodic'), sampled201(4000, 'Sample.Periodic')],
  });
  await step(c, '2.0.1 MeterValues', 'MeterValues', { evseId: 1, meterValue: [sampled201(4500, 'Sample.Clock')] },
    empty);
  await step(c, '2.0.1 TransactionEvent Ended', 'TransactionEvent', {
    eventType: 'Ended', timestamp: now(), triggerReason: 'EVDeparted', seqNo: 2,
    transactionInfo: { transactionId, chargingState: 'Idle', stoppedReason: 'EVDisconnected' }, idToken, evse,
    meterValue: [sampled201(7000, 'Transaction.End')],
  });
  await step(c, '2.0.1 NotifyEvent', 'NotifyEvent', {
    generatedAt: now(), seqNo: 0, tbc: false,
    eventData: [{
      eventId: 1, timestamp: now(), trigger: 'Delta', actualValue: 'Available',
      eventNotificationType: 'HardWiredNotification',
      component: { name: 'Connector', evse }, variable: { name: 'AvailabilityState' },
    }],
  }, empty);
  await step(c, '2.0.1 NotifyReport', 'NotifyReport', {
    requestId: 1, generatedAt: now(), seqNo: 0, tbc: false,
    reportData: [
      {
        component: { name: 'OCPPCommCtrlr' }, variable: { name: 'HeartbeatInterval' },
        variableAttribute: [{ type: 'Actual', value: '300', mutability: 'ReadWrite' }],
        variableCharacteristics: { dataType: 'integer', supportsMonitoring: false },
      },
      {
        component: { name: 'EVSE', evse: { id: 1 } }, variable: { name: 'Power' },
        variableAttribute: [{ type: 'MaxSet', value: '22000', mutability: 'ReadOnly' }],
        variableCharacteristics: { unit: 'W', dataType: 'decimal', supportsMonitoring: true },
      },
    ],
  }, empty);
  await step(c, '2.0.1 SecurityEventNotification', 'SecurityEventNotification',
    { type: 'StartupOfTheDevice', timestamp: now(), techInfo: 'conformance run' }, empty);
  const schedule = { id: 1, chargingRateUnit: 'A', chargingSchedulePeriod: [{ startPeriod: 0, limit: 16 }] };
  await step(c, '2.0.1 NotifyChargingLimit', 'NotifyChargingLimit', {
    chargingLimit: { chargingLimitSource: 'EMS', isGridCritical: false }, evseId: 1, chargingSchedule: [schedule],
  }, empty);
  await step(c, '2.0.1 ClearedChargingLimit', 'ClearedChargingLimit', { chargingLimitSource: 'EMS', evseId: 1 },
    empty);
  await step(c, '2.0.1 NotifyEVChargingNeeds', 'NotifyEVChargingNeeds', {
    evseId: 1, maxScheduleTuples: 3,
    chargingNeeds: {
      requestedEnergyTransfer: 'AC_three_phase', departureTime: new Date(Date.now() + 3 * 3600000).toISOString(),
      acChargingParameters: { energyAmount: 20000, evMinCurrent: 6, evMaxCurrent: 32, evMaxVoltage: 400 },
    },
  }, (r) => ['Accepted', 'Rejected', 'Processing'].includes(r.status));
  await step(c, '2.0.1 ReportChargingProfiles', 'ReportChargingProfiles', {
    requestId: 1, chargingLimitSource: 'CSO', tbc: false, evseId: 1,
    chargingProfile: [{
      id: 1, stackLevel: 0, chargingProfilePurpose: 'TxDefaultProfile', chargingProfileKind: 'Absolute',
      chargingSchedule: [{ ...schedule, startSchedule: now() }],
    }],
  }, empty);
  await step(c, '2.0.1 ReservationStatusUpdate', 'ReservationStatusUpdate',
    { reservationId: 1, reservationUpdateStatus: 'Expired' }, empty);
  await step(c, '2.0.1 FirmwareStatusNotification', 'FirmwareStatusNotification',
    { status: 'Installed', requestId: 1 }, empty);
  await step(c, '2.0.1 LogStatusNotification', 'LogStatusNotification', { status: 'Uploaded', requestId: 1 }, empty);
  await step(c, '2.0.1 DataTransfer', 'DataTransfer',
    { vendorId: 'com.example', messageId: 'ping', data: { nested: { list: [1, 2, 3] } } },
    (r) => ['Accepted', 'Rejected', 'UnknownMessageId', 'UnknownVendorId'].includes(r.status));
  await step(c, '2.0.1 Heartbeat at the end', 'Heartbeat', {}, (r) => isRfc3339(r.currentTime));
}

(async () => {
  await session('ocpp1.6', 'CONF-CP16', ocpp16);
  await session('ocpp2.0.1', 'CONF-CS201', ocpp201);
  console.log(failures ? `${failures} failed, ${passes} passed` : `all passed (${passes})`);
  process.exit(failures ? 1 : 0);
})().catch((e) => {
  console.log(`FAIL unexpected ${e.stack ?? e}`);
  process.exit(1);
});
